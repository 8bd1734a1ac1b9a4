import CPosix
import Foundation

/// A pipe to or from a child process whose ends are closed on exec. The child still gets the end it is
/// handed as stdin, stdout or stderr (spawning dup2s it, which clears the flag), but no other child
/// spawned meanwhile anywhere in the program inherits either end. Foundation's `Pipe()` leaves the flag
/// off: a PostgreSQL started by another test at the moment `git cat-file` was spawned kept the write end
/// of git's stdin, so git never saw end-of-file and the scan waited as long as PostgreSQL lived.
public struct ChildPipe: Sendable {
    public let read: FileHandle
    public let write: FileHandle

    public init() throws {
        var fds: [Int32] = [-1, -1]
        guard pipe2(&fds, O_CLOEXEC) == 0 else {
            throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO)
        }
        read = FileHandle(fileDescriptor: fds[0], closeOnDealloc: true)
        write = FileHandle(fileDescriptor: fds[1], closeOnDealloc: true)
    }

    /// After the child started: the parent closes the end the child uses (else a reader of the other
    /// end never sees end-of-file).
    public func closeChildEnd(childReads: Bool) {
        try? (childReads ? read : write).close()
    }
}

/// A child's stdin, stdout and stderr as `ChildPipe`s: `run` starts it and closes the child's ends here.
public struct ChildStdio: Sendable {
    public let input: ChildPipe
    public let output: ChildPipe
    public let error: ChildPipe

    public init(for p: Process) throws {
        (input, output, error) = (try ChildPipe(), try ChildPipe(), try ChildPipe())
        p.standardInput = input.read
        p.standardOutput = output.write
        p.standardError = error.write
    }

    public func run(_ p: Process) throws {
        try p.run()
        input.closeChildEnd(childReads: true)
        output.closeChildEnd(childReads: false)
        error.closeChildEnd(childReads: false)
    }
}
