#include <openssl/evp.h>
#include <openssl/rsa.h>
#include <openssl/pem.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <openssl/ocsp.h>

/* Function-like macros of OpenSSL that Swift cannot import, as inline functions (Net/TLSInspection.swift). */
static inline int vigil_ssl_ctx_set_proto_range(SSL_CTX *ctx, int min, int max) {
    if (min && !SSL_CTX_set_min_proto_version(ctx, min)) return 0;
    if (max && !SSL_CTX_set_max_proto_version(ctx, max)) return 0;
    return 1;
}
static inline void vigil_ssl_request_ocsp(SSL *s) { SSL_set_tlsext_status_type(s, TLSEXT_STATUSTYPE_ocsp); }
static inline long vigil_ssl_ocsp_response_length(SSL *s) {
    const unsigned char *resp = NULL;
    long n = SSL_get_tlsext_status_ocsp_resp(s, &resp);
    return resp ? n : 0;
}
static inline int vigil_ssl_set_sni(SSL *s, const char *name) { return (int)SSL_set_tlsext_host_name(s, name); }
static inline int vigil_chain_length(SSL *s) {
    STACK_OF(X509) *chain = SSL_get_peer_cert_chain(s);
    return chain ? sk_X509_num(chain) : 0;
}
static inline X509 *vigil_chain_at(SSL *s, int i) {
    STACK_OF(X509) *chain = SSL_get_peer_cert_chain(s);
    return chain ? sk_X509_value(chain, i) : NULL;
}
/* The temporary key of the key exchange (ECDHE/DHE): 1 when the handshake had one (forward secrecy). */
static inline int vigil_ssl_ephemeral_key_bits(SSL *s) {
    EVP_PKEY *k = NULL;
    if (!SSL_get_peer_tmp_key(s, &k) || !k) return 0;
    int bits = EVP_PKEY_get_bits(k);
    EVP_PKEY_free(k);
    return bits;
}
/* Whether the certificate names an OCSP responder (Authority Information Access). */
static inline int vigil_has_ocsp_responder(X509 *c) {
    STACK_OF(OPENSSL_STRING) *urls = X509_get1_ocsp(c);
    int n = urls ? sk_OPENSSL_STRING_num(urls) : 0;
    X509_email_free(urls);
    return n > 0;
}
