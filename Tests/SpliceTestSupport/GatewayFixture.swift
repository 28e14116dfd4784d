import Logging
import NIOCore
import NIOPosix
import Foundation
import SpliceIO

/// An event loop group for one test, shut down by `shutdown()`.
public func makeTestGroup() -> MultiThreadedEventLoopGroup {
    MultiThreadedEventLoopGroup(numberOfThreads: 2)
}

/// Relay loops for a gateway under test, shut down by `shutdownTestGroup`.
public func makeRelayGroup() -> RelayLoopGroup {
    RelayLoopGroup(loopCount: 2)
}

/// A logger for tests: quiet unless `SPLICEGATE_TEST_LOG` names a level.
public func makeTestLogger() -> Logger {
    var logger = Logger(label: "splicegate-test")
    let level = ProcessInfo.processInfo.environment["SPLICEGATE_TEST_LOG"].flatMap(Logger.Level.init(rawValue:))
    logger.logLevel = level ?? .critical
    return logger
}

/// Polls `condition` every 10 ms until it holds or `timeout` seconds pass.
public func eventually(timeout: Double = 10, _ condition: () throws -> Bool) rethrows -> Bool {
    let deadline = Date().addingTimeInterval(timeout)
    while Date() < deadline {
        if try condition() { return true }
        usleep(10_000)
    }
    return try condition()
}

/// Shuts a test's event loop group down from any context (blocking, off the loops).
public func shutdownTestGroup(_ group: any EventLoopGroup) {
    try? group.syncShutdownGracefully()
}
