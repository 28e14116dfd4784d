import Dispatch
import Foundation
import Logging
import NIOCore
import NIOPosix
import SpliceControlPlane
import SpliceCore
import SpliceDataPlane

/// The running process: event loops, the gateway, the admin server, and the signal wait.
struct Runtime {
    let settings: Settings
    let logger: Logger

    func run() throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: System.coreCount)
        let gateway = Gateway(group: group, logger: logger, allowAdHocMediators: settings.allowAdHocMediators)
        var demoEcho: Channel?
        let server: HTTPServer
        do {
            for spec in settings.mediators {
                try gateway.registerMediator(spec)
            }
            for spec in settings.listeners {
                _ = try gateway.addListener(spec)
            }
            if let demoListen = settings.demoListen {
                demoEcho = try startDemo(listen: demoListen, group: group, gateway: gateway)
            }
            let api = AdminAPI(gateway: gateway, options: .init(
                webRoot: settings.webRoot, openAPIFile: settings.openAPIFile,
                version: Splicegate.version, token: settings.token), logger: logger)
            var http = settings.http
            http.logger = logger
            server = try HTTPServer(configuration: http) { request in api.handle(request) }
        } catch {
            gateway.shutdown()
            try? group.syncShutdownGracefully()
            throw StartupError("\(error)")
        }
        print("admin listening on \(server.baseURL)")
        fflush(nil)

        let signal = waitForTermination()
        logger.notice("stopping", metadata: ["signal": "\(signal)"])
        server.stop()
        gateway.shutdown()
        try? demoEcho?.close().wait()
        try? group.syncShutdownGracefully()
        logger.notice("stopped")
    }

    private func startDemo(listen: HostPort, group: any EventLoopGroup, gateway: Gateway) throws -> Channel {
        let echo = try DemoEchoServer.start(group: group)
        let echoPort = echo.localAddress?.port ?? 0
        let listener = try gateway.addListener(ListenerSpec(
            name: "demo", listen: listen, upstream: HostPort(host: "127.0.0.1", port: echoPort)))
        print("demo: echo upstream on 127.0.0.1:\(echoPort), listener \(listener.id) on \(listener.spec.listen)")
        return echo
    }

    /// Blocks until SIGTERM or SIGINT; returns which.
    private func waitForTermination() -> Int32 {
        let received = DispatchSemaphore(value: 0)
        let which = SignalBox()
        var sources: [DispatchSourceSignal] = []
        for number in [SIGTERM, SIGINT] {
            Foundation.signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
            source.setEventHandler {
                which.set(number)
                received.signal()
            }
            source.resume()
            sources.append(source)
        }
        received.wait()
        return which.value
    }
}

/// The signal that arrived, handed from the dispatch handler to the waiting thread.
private final class SignalBox: @unchecked Sendable {
    // @unchecked: written once before the semaphore is signalled, read after it is waited on.
    private(set) var value: Int32 = 0
    func set(_ number: Int32) { value = number }
}
