import ArgumentParser
import Foundation

/// Runs `splicegate ctl …` with the exit codes of DESIGN.md: 0 done, 1 the API answered a
/// problem, 2 usage, 3 gateway unreachable.
///
/// ArgumentParser's own usage failures exit 64 (EX_USAGE); the contract says 2, so the
/// executable hands `ctl` arguments here instead of to its default `main`.
public enum Ctl {
    /// Parses `arguments` (starting with `ctl`) as `Root` does and runs the command.
    public static func main<Root: ParsableCommand>(root: Root.Type, arguments: [String]) -> Never {
        var command: any ParsableCommand
        do {
            command = try Root.parseAsRoot(arguments)
        } catch {
            if Root.exitCode(for: error) == .success { Root.exit(withError: error) }
            printError(Root.fullMessage(for: error))
            exit(CtlFailure.usageCode)
        }
        do {
            try command.run()
            exit(0)
        } catch let failure as CtlFailure {
            printError(failure.message)
            exit(failure.exitCode)
        } catch {
            // Help asked for by a command itself, or a validation error raised while running.
            if Root.exitCode(for: error) == .success { Root.exit(withError: error) }
            printError(Root.fullMessage(for: error))
            exit(CtlFailure.usageCode)
        }
    }

    /// Writes `text` and a newline to stderr.
    static func printError(_ text: String) {
        FileHandle.standardError.write(Data((text.hasSuffix("\n") ? text : text + "\n").utf8))
    }
}
