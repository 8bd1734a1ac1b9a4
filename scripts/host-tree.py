#!/usr/bin/env python3
"""Writes a Linux root filesystem tree for host-audit tests and benchmarks.

    scripts/host-tree.py DIR --profile weak|hardened

`weak` plants one instance of each class of misconfiguration the host rules look for (an sshd that
lets root in with passwords and offers CBC ciphers, a second UID 0, an empty password, a world-readable
shadow file, forwarding and redirects on, telnetd installed, a pending OpenSSL security update, a
setuid shell copy, NOPASSWD sudo, a readable private key in a home directory…). `hardened` is its
correctly configured twin: every check passes on it. Paths are created under DIR; run as root so
ownership is root's."""
import argparse
import os
import stat

P = argparse.ArgumentParser()
P.add_argument("dir")
P.add_argument("--profile", choices=["weak", "hardened"], required=True)
A = P.parse_args()
WEAK = A.profile == "weak"
ROOT = A.dir.rstrip("/")


def put(path, text, mode=0o644):
    full = ROOT + path
    os.makedirs(os.path.dirname(full), exist_ok=True)
    with open(full, "w") as f:
        f.write(text)
    os.chmod(full, mode)


def mkdir(path, mode=0o755):
    full = ROOT + path
    os.makedirs(full, exist_ok=True)
    os.chmod(full, mode)


passwd = [
    "root:x:0:0:root:/root:/bin/bash",
    "daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin",
    "sync:x:4:65534:sync:/bin:/bin/sync",
    "www-data:x:33:33:www-data:/var/www:" + ("/bin/bash" if WEAK else "/usr/sbin/nologin"),
    "sshd:x:100:65534::/run/sshd:/usr/sbin/nologin",
    "alice:x:1000:1000:Alice:/home/alice:/bin/bash",
]
shadow = [
    "root:$y$j9T$abcdefghijklmnop$0123456789abcdefghijklmnopqrstuvwxyzABCD:19700:1:365:7:::",
    "daemon:*:19700:0:99999:7:::",
    "sync:*:19700:0:99999:7:::",
    "www-data:*:19700:0:99999:7:::",
    "sshd:*:19700:0:99999:7:::",
    "alice:" + ("" if WEAK else "$y$j9T$abcdefghijklmnop$0123456789abcdefghijklmnopqrstuvwxyzABCD") + ":19700:1:365:7:::",
]
if WEAK:
    passwd.append("toor:x:0:0:backdoor:/root:/bin/bash")
    shadow.append("toor:$6$salt$hash:19700:0:99999:7:::")
put("/etc/passwd", "\n".join(passwd) + "\n", 0o644)
put("/etc/passwd-", "\n".join(passwd) + "\n", 0o644 if not WEAK else 0o666)
put("/etc/group", "root:x:0:\nshadow:x:42:\nsudo:x:27:alice\nalice:x:1000:\n", 0o644)
put("/etc/group-", "root:x:0:\nshadow:x:42:\nsudo:x:27:alice\nalice:x:1000:\n", 0o644)
put("/etc/shadow", "\n".join(shadow) + "\n", 0o644 if WEAK else 0o640)
put("/etc/shadow-", "\n".join(shadow) + "\n", 0o640)
put("/etc/gshadow", "root:*::\nshadow:*::\n", 0o640)
put("/etc/gshadow-", "root:*::\nshadow:*::\n", 0o640)
for p in ("/etc/shadow", "/etc/shadow-", "/etc/gshadow", "/etc/gshadow-"):
    os.chown(ROOT + p, 0, 42)
put("/etc/hostname", f"{A.profile}-host\n")

if WEAK:
    sshd = """# planted
Port 22
PermitRootLogin yes
PasswordAuthentication yes
PermitEmptyPasswords yes
X11Forwarding yes
MaxAuthTries 10
Ciphers aes128-ctr,aes128-cbc,3des-cbc
MACs hmac-sha2-256,hmac-md5
KexAlgorithms curve25519-sha256,diffie-hellman-group1-sha1
IgnoreRhosts no
HostbasedAuthentication yes
PermitUserEnvironment yes
LoginGraceTime 2m
LogLevel QUIET
MaxSessions 50
"""
    put("/etc/ssh/sshd_config", sshd, 0o644)
else:
    put("/etc/ssh/sshd_config", "Include /etc/ssh/sshd_config.d/*.conf\nPermitRootLogin yes\nUsePAM yes\n", 0o600)
    put("/etc/ssh/sshd_config.d/50-hardening.conf", """PermitRootLogin no
PasswordAuthentication no
PermitEmptyPasswords no
X11Forwarding no
MaxAuthTries 4
Ciphers chacha20-poly1305@openssh.com,aes256-gcm@openssh.com,aes128-gcm@openssh.com,aes256-ctr
MACs hmac-sha2-512-etm@openssh.com,hmac-sha2-256-etm@openssh.com
KexAlgorithms sntrup761x25519-sha512@openssh.com,curve25519-sha256
IgnoreRhosts yes
HostbasedAuthentication no
PermitUserEnvironment no
LoginGraceTime 60
ClientAliveInterval 15
LogLevel VERBOSE
MaxSessions 10
AllowTcpForwarding no
Match User backup
  PasswordAuthentication yes
""", 0o600)
put("/etc/ssh/ssh_host_ed25519_key", "-----BEGIN OPENSSH PRIVATE KEY-----\nAAAA\n-----END OPENSSH PRIVATE KEY-----\n", 0o644 if WEAK else 0o600)
put("/etc/ssh/ssh_host_ed25519_key.pub", "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAA host\n", 0o644)

put("/etc/login.defs", "UID_MIN 1000\n" + ("PASS_MAX_DAYS 99999\nPASS_MIN_DAYS 0\nPASS_WARN_AGE 3\nENCRYPT_METHOD MD5\nUMASK 022\n" if WEAK
                       else "PASS_MAX_DAYS 365\nPASS_MIN_DAYS 1\nPASS_WARN_AGE 7\nENCRYPT_METHOD YESCRYPT\nUMASK 027\n"))
if not WEAK:
    put("/etc/security/pwquality.conf", "minlen = 14\n")
    put("/etc/security/limits.conf", "# no core dumps\n*               hard    core            0\n")

SYSCTL_HARD = {
    "net.ipv4.ip_forward": 0, "net.ipv6.conf.all.forwarding": 0, "net.ipv4.conf.all.send_redirects": 0, "net.ipv4.conf.default.send_redirects": 0,
    "net.ipv4.conf.all.accept_redirects": 0, "net.ipv4.conf.default.accept_redirects": 0, "net.ipv6.conf.all.accept_redirects": 0,
    "net.ipv4.conf.all.secure_redirects": 0, "net.ipv4.conf.all.accept_source_route": 0, "net.ipv6.conf.all.accept_source_route": 0,
    "net.ipv4.conf.all.rp_filter": 1, "net.ipv4.conf.default.rp_filter": 1, "net.ipv4.conf.all.log_martians": 1,
    "net.ipv4.icmp_echo_ignore_broadcasts": 1, "net.ipv4.icmp_ignore_bogus_error_responses": 1, "net.ipv4.tcp_syncookies": 1,
    "net.ipv6.conf.all.accept_ra": 0, "kernel.randomize_va_space": 2, "kernel.dmesg_restrict": 1, "kernel.kptr_restrict": 2,
    "kernel.yama.ptrace_scope": 1, "fs.suid_dumpable": 0, "fs.protected_hardlinks": 1, "fs.protected_symlinks": 1,
}
if WEAK:
    put("/etc/sysctl.conf", "net.ipv4.ip_forward = 1\nkernel.randomize_va_space = 0\nnet.ipv4.tcp_syncookies=0\n")
else:
    put("/usr/lib/sysctl.d/50-default.conf", "net.ipv4.conf.all.rp_filter = 2\n")
    put("/etc/sysctl.d/99-hardening.conf", "".join(f"{k} = {v}\n" for k, v in SYSCTL_HARD.items()))

put("/etc/fstab", "UUID=1 / ext4 defaults 0 1\n" + ("" if WEAK else
    "tmpfs /tmp tmpfs defaults,nodev,nosuid,noexec 0 0\ntmpfs /dev/shm tmpfs defaults,nodev,nosuid,noexec 0 0\n"
    "UUID=2 /var/tmp ext4 defaults,nodev,nosuid,noexec 0 2\n"))

PKGS = {"openssh-server": "1:9.2p1-2+deb12u3", "sudo": "1.9.13p3-1+deb12u1", "libssl3": "3.0.11-1~deb12u2" if WEAK else "3.0.15-1~deb12u1",
        "openssl": "3.0.11-1~deb12u2" if WEAK else "3.0.15-1~deb12u1"}
if WEAK:
    PKGS.update({"telnetd": "0.17+2.4-2", "telnet": "0.17+2.4-2", "nis": "4.3"})
else:
    PKGS.update({"nftables": "1.0.6-2+deb12u2", "auditd": "1:3.0.9-1", "chrony": "4.3-2+deb12u1", "unattended-upgrades": "2.9.1+nmu3"})
put("/var/lib/dpkg/status", "".join(f"Package: {p}\nStatus: install ok installed\nVersion: {v}\nArchitecture: amd64\n\n" for p, v in PKGS.items())
    + "Package: removed-thing\nStatus: deinstall ok config-files\nVersion: 1.0\n\n")
put("/var/lib/apt/lists/deb.debian.org_debian-security_dists_bookworm-security_main_binary-amd64_Packages",
    "Package: openssl\nVersion: 3.0.15-1~deb12u1\n\nPackage: libssl3\nVersion: 3.0.15-1~deb12u1\n\nPackage: sudo\nVersion: 1.9.13p3-1+deb12u1\n\n"
    "Package: libssl3\nVersion: 3.0.13-1~deb12u1\n\n")
if not WEAK:
    put("/etc/apt/apt.conf.d/20auto-upgrades", 'APT::Periodic::Update-Package-Lists "1";\nAPT::Periodic::Unattended-Upgrade "1";\n')
    put("/etc/nftables.conf", "#!/usr/sbin/nft -f\nflush ruleset\ntable inet filter {\n  chain input {\n    type filter hook input priority 0; policy drop;\n"
        "    ct state established,related accept\n    iif lo accept\n    tcp dport 22 accept\n  }\n}\n")
    put("/etc/audit/auditd.conf", "log_file = /var/log/audit/audit.log\n")

put("/etc/sudoers", "Defaults env_reset\n" + ("" if WEAK else "Defaults use_pty\n") + "root ALL=(ALL:ALL) ALL\n%sudo ALL=(ALL:ALL) ALL\n"
    "@includedir /etc/sudoers.d\n", 0o440)
if WEAK:
    put("/etc/sudoers.d/app", "www-data ALL=(ALL) NOPASSWD: ALL\n", 0o440)
put("/etc/crontab", "17 * * * * root cd / && run-parts --report /etc/cron.hourly\n", 0o644 if WEAK else 0o600)
for d in ("/etc/cron.hourly", "/etc/cron.daily", "/etc/cron.weekly", "/etc/cron.monthly", "/etc/cron.d"):
    mkdir(d, 0o755 if WEAK else 0o700)
put("/boot/grub/grub.cfg", "set timeout=5\n", 0o644 if WEAK else 0o400)

mkdir("/usr/bin")
put("/usr/bin/passwd", "#!/bin/sh\n", 0o4755)
put("/usr/bin/sudo", "#!/bin/sh\n", 0o4755)
mkdir("/tmp", 0o1777)
mkdir("/var/tmp", 0o1777)
if WEAK:
    put("/usr/local/bin/rootshell", "#!/bin/sh\n", 0o4755)
    mkdir("/srv/share", 0o777)
    put("/etc/app.conf", "key=value\n", 0o666)
    put("/root/.rhosts", "+ +\n", 0o600)

mkdir("/home/alice", 0o750)
mkdir("/home/alice/.ssh", 0o700)
put("/home/alice/.ssh/id_rsa", "-----BEGIN RSA PRIVATE KEY-----\nMIIE\n-----END RSA PRIVATE KEY-----\n", 0o644 if WEAK else 0o600)
put("/home/alice/.ssh/id_rsa.pub", "ssh-rsa AAAA alice\n", 0o644)
put("/home/alice/.ssh/authorized_keys", "ssh-ed25519 AAAA alice\n", 0o666 if WEAK else 0o600)
for dirpath, dirnames, filenames in os.walk(ROOT + "/home/alice"):
    for n in dirnames + filenames:
        os.chown(os.path.join(dirpath, n), 1000, 1000)
    os.chown(dirpath, 1000, 1000)
mkdir("/root", 0o700)
print(ROOT)
