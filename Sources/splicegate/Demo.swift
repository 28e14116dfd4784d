import NIOCore
import SpliceCore
import SpliceDataPlane
import SpliceSamples

/// `--demo`: an echo upstream, a listener in front of it, and the sample mediators
/// registered, so a newcomer has a session to splice into with nothing else installed.
/// None of it is saved to the state file: it is recreated, on fresh ports, at every start.
struct Demo {
    /// The sample mediators registered, by name.
    static let samples: [SampleTransform] = [.upper, .lower, .rot13, .invert, .identity, .deflate, .inflate,
                                             .delay(milliseconds: 500)]

    private let echo: Channel
    private let mediators: [SampleMediatorServer]

    static func start(listen: HostPort, group: any EventLoopGroup, gateway: Gateway, state: StateFile?) throws -> Demo {
        let echo = try DemoEchoServer.start(group: group)
        var servers: [SampleMediatorServer] = []
        do {
            for transform in samples {
                let server = try SampleMediatorServer.start(transform: transform, host: "127.0.0.1", port: 0, group: group)
                servers.append(server)
                let name = MediatorName(Self.name(of: transform))
                try gateway.registerMediator(MediatorSpec(
                    name: name, kind: .tcp(HostPort(host: "127.0.0.1", port: server.localPort))))
                state?.exclude(mediator: name)
            }
            let echoPort = echo.localAddress?.port ?? 0
            let listener = try gateway.addListener(ListenerSpec(
                name: "demo", listen: listen, upstream: HostPort(host: "127.0.0.1", port: echoPort)))
            state?.exclude(listener.id)
            print("demo: echo upstream on 127.0.0.1:\(echoPort), listener \(listener.id) on \(listener.spec.listen)")
            print("demo: sample mediators \(samples.map(name(of:)).joined(separator: ", "))")
        } catch {
            servers.forEach { $0.close() }
            try? echo.close().wait()
            throw error
        }
        return Demo(echo: echo, mediators: servers)
    }

    /// The registry name of a sample (`delay=500` → `delay-500`: names take no `=`).
    static func name(of transform: SampleTransform) -> String {
        transform.description.replacingOccurrences(of: "=", with: "-")
    }

    /// Stops the echo server and the sample mediators.
    func stop() {
        mediators.forEach { $0.close() }
        try? echo.close().wait()
    }
}
