#if canImport(Glibc)
import Glibc
#endif

/// Why a file cannot be read, for messages that name it: Foundation's `contents(atPath:)`
/// answers only nil.
enum ReadFailure {
    /// The failing call's error in words (`no such file or directory`, `permission denied`,
    /// `is a directory`).
    static func reason(_ path: String) -> String {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return describe(errno) }
        defer { close(fd) }
        var byte: UInt8 = 0
        return read(fd, &byte, 1) < 0 ? describe(errno) : "it changed while being read"
    }

    private static func describe(_ code: Int32) -> String {
        String(cString: strerror(code)).lowercased()
    }
}
