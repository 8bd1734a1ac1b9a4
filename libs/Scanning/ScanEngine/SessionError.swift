/// Why a provider could not open a scan target (an AWS session, a web target, a host); `permanent`
/// failures (refused credentials, missing configuration) are not worth retrying.
public struct SessionError: Error, CustomStringConvertible, Sendable {
    public let message: String
    public let permanent: Bool
    public init(message: String, permanent: Bool) {
        self.message = message
        self.permanent = permanent
    }
    public var description: String { message }
}
