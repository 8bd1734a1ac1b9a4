import Foundation
import Hummingbird
import NIOCore

/// `GET /connector/install.sh` and `GET /connector/vigil-connector`: what the Linux install
/// instructions run. The script downloads the agent from this gateway, registers it with an enrollment
/// token and installs a systemd unit (or prints how to run it where there is no systemd).
enum ConnectorDownloads {
    static let script = """
        #!/bin/sh
        # Installs the Vigil connector: downloads the agent, registers it with an enrollment token and runs it as a service.
        # Usage: install.sh --url URL --token vce_... [--name NAME] [--ca-file PEM] [--prefix DIR] [--state-dir DIR] [--no-service]
        set -eu
        URL="" TOKEN="" NAME="$(hostname)" PREFIX=/usr/local/bin STATE=/var/lib/vigil-connector SERVICE=1 CA=""
        while [ $# -gt 0 ]; do
          case "$1" in
            --url) URL=$2; shift 2;;
            --token) TOKEN=$2; shift 2;;
            --name) NAME=$2; shift 2;;
            --ca-file) CA=$2; shift 2;;
            --prefix) PREFIX=$2; shift 2;;
            --state-dir) STATE=$2; shift 2;;
            --no-service) SERVICE=0; shift;;
            *) echo "install.sh: unknown option $1" >&2; exit 2;;
          esac
        done
        [ -n "$URL" ] && [ -n "$TOKEN" ] || { echo "usage: install.sh --url URL --token TOKEN [--name NAME]" >&2; exit 2; }
        [ "$(id -u)" = 0 ] || { echo "install.sh: run as root (the connector reads root-only files)" >&2; exit 1; }
        mkdir -p "$PREFIX"
        tmp=$(mktemp)
        trap 'rm -f "$tmp"' EXIT
        if [ -n "$CA" ]; then set -- --cacert "$CA"; else set --; fi
        curl -fsSL "$@" "$URL/connector/vigil-connector" -o "$tmp"
        install -m 0755 "$tmp" "$PREFIX/vigil-connector"
        set -- --url "$URL" --token "$TOKEN" --name "$NAME" --state-dir "$STATE"
        [ -n "$CA" ] && set -- "$@" --ca-file "$CA"
        "$PREFIX/vigil-connector" register "$@"
        if [ "$SERVICE" = 1 ] && command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
          cat > /etc/systemd/system/vigil-connector.service <<UNIT
        [Unit]
        Description=Vigil connector
        After=network-online.target
        Wants=network-online.target

        [Service]
        ExecStart=$PREFIX/vigil-connector run --state-dir $STATE${CA:+ --ca-file $CA}
        Restart=always
        RestartSec=10
        RestartPreventExitStatus=3

        [Install]
        WantedBy=multi-user.target
        UNIT
          systemctl daemon-reload
          systemctl enable --now vigil-connector
          echo "vigil-connector is running: systemctl status vigil-connector"
        else
          echo "vigil-connector is installed; start it with: $PREFIX/vigil-connector run --state-dir $STATE${CA:+ --ca-file $CA}"
        fi

        """

    static func register(on router: Router<GatewayContext>, binary: String) {
        router.get("/connector/install.sh") { _, _ -> Response in
            Response(status: .ok, headers: [.contentType: "text/x-shellscript; charset=utf-8"], body: .init(byteBuffer: ByteBuffer(string: script)))
        }
        router.get("/connector/vigil-connector") { _, context -> Response in
            guard FileManager.default.isReadableFile(atPath: binary) else {
                throw HTTPError(.notFound, message: "the connector binary is not available on this gateway (VIGIL_CONNECTOR_BINARY)")
            }
            let body = try await FileIO().loadFile(path: binary, context: context)
            return Response(
                status: .ok,
                headers: [.contentType: "application/octet-stream", .contentDisposition: "attachment; filename=\"vigil-connector\""],
                body: body)
        }
    }
}
