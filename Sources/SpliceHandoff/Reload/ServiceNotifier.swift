internal import CSpliceLinux
import Foundation
import Logging

/// Tells the service manager how the gateway is doing (sd_notify(3)): one datagram of
/// `KEY=VALUE` lines to the socket in `$NOTIFY_SOCKET`, written without libsystemd. A
/// process started without that variable (not by systemd with `Type=notify`) sends nothing.
public struct ServiceNotifier: Sendable {
    /// The socket's address: a path, or an abstract name written with a leading `@`.
    public let address: String?
    private let logger: Logger

    /// The notifier for `$NOTIFY_SOCKET` of `environment`. The variable stays set: a
    /// successor the gateway starts on a reload inherits it and reports on its own.
    public init(environment: [String: String] = ProcessInfo.processInfo.environment, logger: Logger) {
        address = environment["NOTIFY_SOCKET"].flatMap { $0.isEmpty ? nil : $0 }
        self.logger = logger
    }

    /// Start-up is over: the gateway serves. A successor also says that it is the main
    /// process from now on (the service manager follows it instead of the one it started).
    public func ready(succeeding predecessor: Int32?) {
        if let predecessor {
            send(["MAINPID=\(getpid())", "READY=1", "STATUS=serving (took over from pid \(predecessor))"])
        } else {
            send(["READY=1", "STATUS=serving"])
        }
    }

    /// A reload has begun; `READY=1` (from this process or its successor) ends it.
    /// `MONOTONIC_USEC` lets systemd 253+ tell this reload from an earlier one.
    public func reloading(status: String) {
        var now = timespec()
        clock_gettime(CLOCK_MONOTONIC, &now)
        let microseconds = UInt64(now.tv_sec) * 1_000_000 + UInt64(now.tv_nsec) / 1000
        send(["RELOADING=1", "MONOTONIC_USEC=\(microseconds)", "STATUS=\(oneLine(status))"])
    }

    /// The reload is over and this process serves on (its successor did not take over).
    public func reloadFailed(status: String) {
        send(["READY=1", "STATUS=\(oneLine(status))"])
    }

    /// The gateway is stopping (it drains its sessions, then exits).
    public func stopping(status: String) {
        send(["STOPPING=1", "STATUS=\(oneLine(status))"])
    }

    /// The main process is `pid` from now on: said by the process handing over before it
    /// exits, so that the service manager never sees its main process gone.
    public func mainProcess(_ pid: Int32) {
        send(["MAINPID=\(pid)"])
    }

    /// A field's value ends at a newline: one in a status would start a field of its own.
    private func oneLine(_ text: String) -> String {
        text.split(whereSeparator: \.isNewline).joined(separator: " ")
    }

    /// Sends `fields` as one message; false (and logged) if it could not be sent.
    @discardableResult
    public func send(_ fields: [String]) -> Bool {
        guard let address else { return false }
        let message = fields.joined(separator: "\n") + "\n"
        let rc = splice_notify_send(address, message, message.utf8.count)
        guard rc == 0 else {
            logger.warning("cannot notify the service manager", metadata: [
                "notify_socket": "\(address)", "message": "\(fields.joined(separator: " "))",
                "reason": "\(String(cString: strerror(errno)))",
            ])
            return false
        }
        logger.debug("notified the service manager", metadata: ["message": "\(fields.joined(separator: " "))"])
        return true
    }
}
