import Logging

/// A session's logger: the listener's, with the session id and client as metadata.
///
/// The metadata is attached only when a line is actually logged. Setting metadata on a
/// `Logger` makes swift-log's stream handler re-render all of it at once, and a session logs
/// at info when it opens and closes: at the default `warning` level of a busy gateway that
/// was ~8 % of the CPU per connection, for lines nobody sees.
struct SessionLogger {
    /// The listener's logger.
    let base: Logger
    /// The session whose id and client go into each line.
    let record: SessionRecord

    private func logger() -> Logger {
        var logger = base
        logger[metadataKey: "session"] = "\(record.id)"
        logger[metadataKey: "client"] = "\(record.client)"
        return logger
    }

    /// Logs at `level` if the listener's logger lets that level through.
    func log(_ level: Logger.Level, _ message: @autoclosure () -> Logger.Message,
             metadata: @autoclosure () -> Logger.Metadata? = nil) {
        guard base.logLevel <= level else { return }
        logger().log(level: level, message(), metadata: metadata())
    }

    /// Logs at debug.
    func debug(_ message: @autoclosure () -> Logger.Message, metadata: @autoclosure () -> Logger.Metadata? = nil) {
        log(.debug, message(), metadata: metadata())
    }

    /// Logs at info.
    func info(_ message: @autoclosure () -> Logger.Message, metadata: @autoclosure () -> Logger.Metadata? = nil) {
        log(.info, message(), metadata: metadata())
    }

    /// Logs at warning.
    func warning(_ message: @autoclosure () -> Logger.Message, metadata: @autoclosure () -> Logger.Metadata? = nil) {
        log(.warning, message(), metadata: metadata())
    }
}
