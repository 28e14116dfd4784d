import Foundation

/// The command a reload starts: this process's executable path and arguments as they were
/// at start-up, with `--take-over` naming this process's handoff socket.
///
/// The path is the one the process was started by, not `/proc/self/exe`: after a package
/// upgrade the new binary sits at that path, and starting it is the point of the reload
/// (the running process's own file may be deleted by then). A symlink is not resolved
/// either, for the same reason.
public struct SuccessorCommand: Equatable, Sendable {
    /// The executable's absolute path.
    public let executable: String
    /// The arguments after the program name, `--take-over` included.
    public let arguments: [String]

    /// The command for a process started as `argv` in `directory`, whose `$PATH` was
    /// `path`, to take over from its handoff socket `socket`. Nil when `argv[0]` names no
    /// executable (a bare name found in no directory of `path`).
    public init?(argv: [String], directory: String, path: String?, takingOver socket: String,
                 isExecutable: (String) -> Bool = { FileManager.default.isExecutableFile(atPath: $0) }) {
        guard let program = argv.first, !program.isEmpty else { return nil }
        if program.hasPrefix("/") {
            executable = program
        } else if program.contains("/") {
            // Relative to the directory the process started in (it never changes it).
            executable = URL(fileURLWithPath: program, relativeTo: URL(fileURLWithPath: directory, isDirectory: true))
                .standardizedFileURL.path
        } else {
            // As the shell found it: the first directory of $PATH that has it.
            let directories = (path ?? "").split(separator: ":", omittingEmptySubsequences: false)
                .map { $0.isEmpty ? directory : String($0) }
            guard let found = directories.map({ $0 + "/" + program }).first(where: isExecutable) else { return nil }
            executable = found.hasPrefix("/") ? found : directory + "/" + found
        }
        arguments = Self.replacingTakeOver(in: Array(argv.dropFirst()), with: socket)
    }

    /// `arguments` without any `--take-over` (a process that was itself a successor took
    /// over from some socket), then `--take-over socket`.
    static func replacingTakeOver(in arguments: [String], with socket: String) -> [String] {
        var kept: [String] = []
        var index = arguments.startIndex
        while index < arguments.endIndex {
            let argument = arguments[index]
            index += 1
            if argument == "--take-over" {
                index += 1  // and its value
                continue
            }
            if argument.hasPrefix("--take-over=") { continue }
            kept.append(argument)
        }
        return kept + ["--take-over", socket]
    }
}
