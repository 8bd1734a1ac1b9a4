import AWS
import Foundation
import ScanEngine
import VigilCore

/// The AWS fix actions (rules name them in `fix_action`). Each reads the state it changes, plans the
/// exact calls, and plans the calls that put the recorded state back.
enum FixActions {
    static let ec2 = "2016-11-15", iam = "2010-05-08", rds = "2014-10-31", sqs = "2012-11-05", sns = "2010-03-31"
    static let s3ns = "http://s3.amazonaws.com/doc/2006-03-01/"
    static let trail = "com.amazonaws.cloudtrail.v20131101.CloudTrail_20131101"

    static let all: [FixAction] = s3Actions + ec2Actions + identityActions + messagingActions + dataActions
    static let byName: [String: FixAction] = Dictionary(uniqueKeysWithValues: all.map { ($0.name, $0) })
}
