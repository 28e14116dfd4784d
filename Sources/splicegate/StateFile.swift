#if canImport(Glibc)
import Glibc
#endif
import Foundation
import SpliceControlPlane
import SpliceCore
import SpliceDataPlane
import Synchronization

/// The `--state-file`: the listeners and mediators as they are now, written after every
/// change made over the API and read back at the next start.
///
/// `{"version": 1, "mediators": [...], "listeners": [{"id": "l3", ...}]}`: the same objects
/// as the API's POST bodies (exec mediators included), each listener with its id and the
/// address it is bound to, so it comes back on the same port.
final class StateFile: Sendable {
    /// What a state file holds.
    struct Contents {
        /// Registered mediators, by name.
        var mediators: [MediatorSpec]
        /// Listeners with the ids and bound addresses they had.
        var listeners: [(id: ListenerID, spec: ListenerSpec)]
        /// The number of the next listener id to issue.
        var nextListenerNumber: UInt64
    }

    /// Where the state lives.
    let path: String
    /// Listeners not to save (the `--demo` one, which is recreated at each start).
    private let transient = Mutex<Set<ListenerID>>([])
    private let transientMediators = Mutex<Set<MediatorName>>([])
    // One save at a time, so the last write reflects the last change.
    private let writing = Mutex<Void>(())

    init(path: String) {
        self.path = path
    }

    /// Keeps `listener` out of the saved state.
    func exclude(_ listener: ListenerID) {
        _ = transient.withLock { $0.insert(listener) }
    }

    /// Keeps the mediator `name` out of the saved state (the demo's, on ephemeral ports).
    func exclude(mediator name: MediatorName) {
        _ = transientMediators.withLock { $0.insert(name) }
    }

    // MARK: reading

    /// The saved state, or nil when there is no file yet; anything else that goes wrong
    /// (unreadable, not JSON, an invalid entry) is a start-up error naming the file.
    func load() throws(StartupError) -> Contents? {
        var status = stat()
        guard stat(path, &status) == 0 else {
            if errno == ENOENT { return nil }
            throw StartupError("state file \(path) cannot be read: \(String(cString: strerror(errno)))")
        }
        guard let data = FileManager.default.contents(atPath: path) else {
            throw StartupError("state file \(path) cannot be read: \(ReadFailure.reason(path))")
        }
        do throws(APIError) {
            return try Self.decode(JSON.parse(Array(data)))
        } catch {
            throw StartupError(
                "state file \(path) is corrupt: \(error.detail) (fix or remove it; it is not ignored, "
                    + "so that a damaged file never starts the gateway empty)")
        }
    }

    private static func decode(_ json: JSON) throws(APIError) -> Contents {
        let reader = try JSONObjectReader(json, allowed: ["version", "next_listener_id", "mediators", "listeners"])
        guard try reader.requiredInt("version") == 1 else { throw .invalid("unsupported version (expected 1)") }
        let next = try reader.optionalInt("next_listener_id", min: 1) ?? 1
        var contents = Contents(mediators: [], listeners: [], nextListenerNumber: UInt64(next))
        for (index, entry) in (try reader.optionalArray("mediators") ?? []).enumerated() {
            do {
                contents.mediators.append(try MediatorSpec(json: entry, allowExec: true))
            } catch {
                throw .invalid("mediators[\(index)]: \(error.detail)")
            }
        }
        for (index, entry) in (try reader.optionalArray("listeners") ?? []).enumerated() {
            guard var object = entry.object else { throw .invalid("listeners[\(index)] is not an object") }
            guard let text = object["id"]?.string, let id = ListenerID(text) else {
                throw .invalid("listeners[\(index)]: field 'id' must be a listener id such as l1")
            }
            object["id"] = nil
            do {
                contents.listeners.append((id, try ListenerSpec(json: .object(object))))
            } catch {
                throw .invalid("listeners[\(index)]: \(error.detail)")
            }
        }
        return contents
    }

    /// Deletes the temporary files (`.NAME.tmp-PID`) that saves cut short by a crash left
    /// beside the state file; returns their names. Only files of that pattern go, and not one
    /// whose process is alive (another gateway saving to the same path right now); one with
    /// this process's id is stale, since it has not saved yet.
    func removeStaleTemporaries() -> [String] {
        let url = URL(fileURLWithPath: path)
        let directory = url.deletingLastPathComponent().path
        let prefix = "." + url.lastPathComponent + ".tmp-"
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: directory) else { return [] }
        return names.filter { name in
            guard name.hasPrefix(prefix), let pid = pid_t(name.dropFirst(prefix.count)), pid > 0 else { return false }
            let alive = pid != getpid() && (kill(pid, 0) == 0 || errno == EPERM)
            return !alive && unlink(directory + "/" + name) == 0
        }.sorted()
    }

    // MARK: writing

    /// Writes the gateway's listeners and mediators: a temporary file in the same directory,
    /// fsync, rename over the old file, fsync of the directory, so a crash at any moment
    /// leaves either the old state or the new one.
    func save(_ gateway: Gateway) throws(APIError) {
        try writing.withLock { _ throws(APIError) in
            let skip = transient.withLock { $0 }
            var root = JSONObject()
            root["version"] = 1
            root["next_listener_id"] = .int(Int64(clamping: gateway.nextListenerNumber))
            let skipMediators = transientMediators.withLock { $0 }
            root["mediators"] = .array(gateway.registeredMediators().filter { !skipMediators.contains($0.spec.name) }
                .map(\.spec.json))
            root["listeners"] = .array(gateway.listeners().filter { !skip.contains($0.id) }.map { listener in
                var object = JSONObject()
                object["id"] = .string("\(listener.id)")
                for (key, value) in listener.spec.json.object ?? JSONObject() { object[key] = value }
                return .object(object)
            })
            var bytes = JSON.object(root).serializedBytes()
            bytes.append(UInt8(ascii: "\n"))
            do {
                try Self.writeAtomically(bytes, to: path)
            } catch {
                throw .stateNotSaved("the state file \(path) could not be written: \(error)")
            }
        }
    }

    private static func writeAtomically(_ bytes: [UInt8], to path: String) throws(SystemCallError) {
        let url = URL(fileURLWithPath: path)
        let directory = url.deletingLastPathComponent().path
        let temporary = directory + "/." + url.lastPathComponent + ".tmp-\(getpid())"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw SystemCallError("open \(temporary)") }
        var written = 0
        while written < bytes.count {
            let result = bytes.withUnsafeBytes { raw in write(fd, raw.baseAddress.map { $0 + written }, raw.count - written) }
            if result < 0 && errno == EINTR { continue }
            guard result > 0 else {
                let error = SystemCallError("write \(temporary)")
                close(fd)
                unlink(temporary)
                throw error
            }
            written += result
        }
        guard fsync(fd) == 0 else {
            let error = SystemCallError("fsync \(temporary)")
            close(fd)
            unlink(temporary)
            throw error
        }
        close(fd)
        guard rename(temporary, path) == 0 else {
            let error = SystemCallError("rename \(temporary) to \(path)")
            unlink(temporary)
            throw error
        }
        // The rename is durable only once the directory entry is.
        let directoryFD = open(directory.isEmpty ? "." : directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard directoryFD >= 0 else { throw SystemCallError("open directory \(directory)") }
        defer { close(directoryFD) }
        guard fsync(directoryFD) == 0 else { throw SystemCallError("fsync directory \(directory)") }
    }
}

/// A failed system call and its errno, as text.
struct SystemCallError: Error, CustomStringConvertible {
    let description: String

    init(_ call: String) {
        description = "\(call): \(String(cString: strerror(errno)))"
    }
}
