import AWS
import Foundation
import ScanEngine
import VigilCore

/// RDS fixes: public instances and public snapshots.
extension FixActions {
    static let dataActions: [FixAction] = [
        FixAction(
            name: "rds.disable_public_access", title: "Make the RDS instance not publicly accessible", service: "rds",
            resourceType: "aws.rds.instance",
            permissions: ["rds:DescribeDBInstances", "rds:ModifyDBInstance"], rollbackPermissions: ["rds:ModifyDBInstance"],
            inspect: { c, t in
                let x = try await c.query(
                    service: "rds", region: t.region, action: "DescribeDBInstances", version: rds, params: [("DBInstanceIdentifier", t.resourceName)])
                return .object(["publicly_accessible": .bool(x.first("PubliclyAccessible")?.text == "true")])
            },
            plan: { t, s in
                s["publicly_accessible"]?.boolValue == true
                    ? [
                        .query(
                            "rds", t.region, "ModifyDBInstance", version: rds,
                            [("DBInstanceIdentifier", t.resourceName), ("PubliclyAccessible", "false"), ("ApplyImmediately", "true")])
                    ] : []
            },
            rollback: { t, _, _ in
                [
                    .query(
                        "rds", t.region, "ModifyDBInstance", version: rds,
                        [("DBInstanceIdentifier", t.resourceName), ("PubliclyAccessible", "true"), ("ApplyImmediately", "true")])
                ]
            }),
        FixAction(
            name: "rds.make_snapshot_private", title: "Remove the public (all) restore permission from the RDS snapshot", service: "rds",
            resourceType: "aws.rds.snapshot", permissions: ["rds:DescribeDBSnapshotAttributes", "rds:ModifyDBSnapshotAttribute"],
            rollbackPermissions: ["rds:ModifyDBSnapshotAttribute"],
            inspect: { c, t in
                let x = try await c.query(
                    service: "rds", region: t.region, action: "DescribeDBSnapshotAttributes", version: rds,
                    params: [("DBSnapshotIdentifier", t.resourceName)])
                let restore = x.all("DBSnapshotAttribute").first { $0["AttributeName"] == "restore" }
                return .object(["public": .bool(restore?.all("AttributeValue").contains { $0.text == "all" } ?? false)])
            },
            plan: { t, s in
                s["public"]?.boolValue == true
                    ? [
                        .query(
                            "rds", t.region, "ModifyDBSnapshotAttribute", version: rds,
                            [("DBSnapshotIdentifier", t.resourceName), ("AttributeName", "restore"), ("ValuesToRemove.AttributeValue.1", "all")])
                    ] : []
            },
            rollback: { t, _, _ in
                [
                    .query(
                        "rds", t.region, "ModifyDBSnapshotAttribute", version: rds,
                        [
                            ("DBSnapshotIdentifier", t.resourceName), ("AttributeName", "restore"),
                            ("ValuesToAdd.AttributeValue.1", "all"),
                        ])
                ]
            }),
    ]
}
