import Glibc

/// Where `ctl capture` writes the pcapng stream: a file or stdout, written with `write(2)`
/// straight away (no stdio buffer), so `… | wireshark -k -i -` sees every packet as it comes.
struct ByteSink: Sendable {
    /// What `write` found.
    enum Outcome: Sendable {
        /// Every byte was written.
        case written
        /// The reader of the pipe went away (EPIPE): stop writing, quietly.
        case readerLeft
    }

    private let fd: Int32
    private let ownsDescriptor: Bool
    /// The file's name for messages, or "stdout".
    let name: String

    /// Standard output.
    static func standardOutput() -> ByteSink {
        ByteSink(fd: STDOUT_FILENO, ownsDescriptor: false, name: "stdout")
    }

    /// Creates (or truncates) the file at `path`.
    static func file(_ path: String) throws(CtlFailure) -> ByteSink {
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw .usage("cannot write \(path): \(String(cString: strerror(errno)))") }
        return ByteSink(fd: fd, ownsDescriptor: true, name: path)
    }

    /// Writes all of `bytes`. SIGPIPE must be ignored, so that a closed pipe is EPIPE here
    /// rather than the end of the process.
    func write(_ bytes: ArraySlice<UInt8>) throws(CtlFailure) -> Outcome {
        var rest = bytes
        while !rest.isEmpty {
            let count = rest.withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
            if count >= 0 {
                rest = rest.dropFirst(count)
            } else if errno == EINTR {
                continue
            } else if errno == EPIPE {
                return .readerLeft
            } else {
                throw .output("cannot write \(name): \(String(cString: strerror(errno)))")
            }
        }
        return .written
    }

    /// Closes the file (stdout stays open).
    func close() {
        if ownsDescriptor { _ = Glibc.close(fd) }
    }
}
