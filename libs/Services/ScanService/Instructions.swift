import Bus
import Contracts
import Foundation
import ServiceRuntime
import VigilCore
import VigilCrypto

struct GeneratedKeyReply: Codable, Sendable {
    var algorithm: String
    var publicKey: String
    var privateKey: String
    var fingerprint: String
    var instructions: [String]
}
struct Instructions: Codable, Sendable {
    var provider: String
    var title: String
    var steps: [String]
    var commands: [String]
    var variables: [String]
    var notes: [String]
}

/// Key generation for Linux SSH scanning and the install/setup instructions of the other providers.
/// The instructions are templates: `{ENROLLMENT_TOKEN}` and `{CONNECTOR_NAME}` are filled in by the
/// caller after creating an enrollment; no secret is ever part of them.
struct InstructionHandlers: Sendable {
    let publicURL: String

    func register(on r: ServiceResponder) {
        r.add(Endpoint<Empty, GeneratedKeyReply>(Subjects.Scans.connectionGenerateKey)) { _, p, ctx in
            let comment = "vigil-scanner@\(p.tenantSlug)"
            let key = try await Blocking.run { try SSHKeyPair.generateRSA(bits: 4096, comment: comment) }
            return GeneratedKeyReply(
                algorithm: "rsa-4096", publicKey: key.publicKey, privateKey: key.privateKeyPEM, fingerprint: key.fingerprint,
                instructions: [
                    "Save the private key now: it is shown once and Vigil does not keep it until you create the connection.",
                    "On the server: sudo useradd --create-home --shell /bin/bash vigil-scanner",
                    "sudo install -d -m 700 -o vigil-scanner -g vigil-scanner /home/vigil-scanner/.ssh",
                    "echo '\(key.publicKey)' | sudo tee -a /home/vigil-scanner/.ssh/authorized_keys",
                    "sudo chown vigil-scanner: /home/vigil-scanner/.ssh/authorized_keys && sudo chmod 600 /home/vigil-scanner/.ssh/authorized_keys",
                    "Check the fingerprint matches: ssh-keygen -lf /home/vigil-scanner/.ssh/authorized_keys (\(key.fingerprint))",
                ])
        }
        for (name, build) in [
            ("linux_install", linuxInstall), ("windows_install", windowsInstall), ("windows_setup", windowsSetup),
            ("azure_setup", azureSetup), ("gcp_setup", gcpSetup),
        ] as [(String, @Sendable () -> Instructions)] {
            r.add(Endpoint<Empty, Instructions>(Subjects.Scans.instructions(name))) { (_, _: Principal, _) in build() }
        }
    }

    var linuxInstall: @Sendable () -> Instructions {
        { [publicURL] in
            Instructions(
                provider: "linux", title: "Install the Vigil connector on a Linux host",
                steps: [
                    "Create an enrollment token in Vigil (Connectors → Enrollments).", "Run the command below as root on the host.",
                    "The connector registers itself and appears under Connectors within a minute.",
                ],
                commands: [
                    "curl -fsSL \(publicURL)/connector/install.sh | sudo sh -s -- --token '{ENROLLMENT_TOKEN}' "
                        + "--name '{CONNECTOR_NAME}' --url '\(publicURL)'",
                    "systemctl status vigil-connector",
                ],
                variables: ["ENROLLMENT_TOKEN", "CONNECTOR_NAME"],
                notes: [
                    "The connector makes outbound HTTPS connections only; no inbound port is opened.",
                    "Enrollment tokens are single-use by default and expire; the connector then uses its own secret, kept in "
                        + "/var/lib/vigil-connector/connector.json (mode 600).",
                    "A private CA: add --ca-file /path/ca.pem. A proxy: run the service with --proxy http://proxy:3128.",
                    "Without a server, audit the host (or a mounted image) locally: vigil-connector audit --root / --format text",
                ])
        }
    }

    var windowsInstall: @Sendable () -> Instructions {
        { [publicURL] in
            Instructions(
                provider: "windows", title: "The Vigil connector does not run on Windows yet",
                steps: [
                    "The connector and its host checks are for Linux (Debian and Ubuntu, and images of them).",
                    "Windows hosts cannot be enrolled; this page will give the installer when a Windows connector exists.",
                ],
                commands: [],
                variables: [],
                notes: ["Linux hosts: GET /api/v1/connections/linux/install-instructions."])
        }
    }

    var windowsSetup: @Sendable () -> Instructions {
        {
            Instructions(
                provider: "windows", title: "Prepare Windows Server for agentless scanning over WinRM (HTTPS)",
                steps: ["Run in PowerShell as Administrator.", "Use the created account's credentials when you add the connection."],
                commands: [
                    "$cert = New-SelfSignedCertificate -DnsName $env:COMPUTERNAME -CertStoreLocation Cert:\\LocalMachine\\My",
                    "New-Item -Path WSMan:\\localhost\\Listener -Transport HTTPS -Address * -CertificateThumbPrint $cert.Thumbprint -Force",
                    "New-NetFirewallRule -DisplayName 'WinRM HTTPS (Vigil)' -Direction Inbound -Protocol TCP -LocalPort 5986 -Action Allow",
                    "$pw = Read-Host -AsSecureString 'Password for vigil-scanner'",
                    "New-LocalUser -Name 'vigil-scanner' -Password $pw -PasswordNeverExpires",
                    "Add-LocalGroupMember -Group 'Remote Management Users' -Member 'vigil-scanner'",
                    "Add-LocalGroupMember -Group 'Event Log Readers' -Member 'vigil-scanner'",
                ],
                variables: [],
                notes: ["Restrict the firewall rule to Vigil's scanner addresses where you can.", "The account needs no administrator rights."])
        }
    }

    var azureSetup: @Sendable () -> Instructions {
        {
            Instructions(
                provider: "azure", title: "Create a read-only service principal for Azure",
                steps: [
                    "Sign in with the Azure CLI (az login) as someone who can assign roles on the subscription.",
                    "Run the commands, then give Vigil the appId, password and tenant they print.",
                ],
                commands: [
                    "az account set --subscription '<SUBSCRIPTION_ID>'",
                    "az ad sp create-for-rbac --name vigil-scanner --role Reader --scopes /subscriptions/<SUBSCRIPTION_ID>",
                    "az role assignment create --assignee <APP_ID> --role 'Security Reader' --scope /subscriptions/<SUBSCRIPTION_ID>",
                ],
                variables: ["SUBSCRIPTION_ID", "APP_ID"],
                notes: ["Reader and Security Reader are read-only; remediation needs separate write credentials."])
        }
    }

    var gcpSetup: @Sendable () -> Instructions {
        {
            Instructions(
                provider: "gcp", title: "Create a read-only service account for Google Cloud",
                steps: [
                    "Run in Cloud Shell or with gcloud authenticated as a project owner.", "Upload the key file to Vigil, then delete it locally.",
                ],
                commands: [
                    "gcloud iam service-accounts create vigil-scanner --project <PROJECT_ID> --display-name 'Vigil scanner'",
                    "gcloud projects add-iam-policy-binding <PROJECT_ID> --member serviceAccount:vigil-scanner@<PROJECT_ID>.iam.gserviceaccount.com "
                        + "--role roles/viewer",
                    "gcloud projects add-iam-policy-binding <PROJECT_ID> --member serviceAccount:vigil-scanner@<PROJECT_ID>.iam.gserviceaccount.com "
                        + "--role roles/iam.securityReviewer",
                    "gcloud iam service-accounts keys create vigil-key.json --iam-account vigil-scanner@<PROJECT_ID>.iam.gserviceaccount.com",
                ],
                variables: ["PROJECT_ID"],
                notes: ["Both roles are read-only."])
        }
    }
}
