import ArgumentParser
import Dispatch
import Foundation
import NIOCore
import NIOPosix
import SpliceCore
import SpliceSamples

/// `splicegate mediator`: serves one sample transform on a TCP address, a mediator to
/// splice into sessions without writing one.
struct MediatorCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "mediator",
        abstract: "Serve a sample transform (a TCP stream filter) to splice into sessions.")

    @Option(help: "Address HOST:PORT to accept on; port 0 binds an ephemeral port.")
    var listen = "127.0.0.1:9000"

    @Option(help: "The transform: \(SampleTransform.names.joined(separator: ", ")).")
    var transform: String

    mutating func validate() throws {
        do {
            _ = try SampleTransform(parsing: transform)
        } catch {
            throw ValidationError("--transform: \(error)")
        }
        do {
            _ = try HostPort(parsing: listen, field: "--listen")
        } catch {
            throw ValidationError(error.detail)
        }
    }

    func run() throws {
        let transform = try SampleTransform(parsing: transform)
        let address = try HostPort(parsing: listen, field: "--listen")
        let group = MultiThreadedEventLoopGroup(numberOfThreads: System.coreCount)
        let server: SampleMediatorServer
        do {
            server = try SampleMediatorServer.start(
                transform: transform, host: address.host, port: address.port, group: group)
        } catch {
            try? group.syncShutdownGracefully()
            FileHandle.standardError.write(Data("cannot listen on \(address): \(error)\n".utf8))
            throw ExitCode(2)
        }
        let bound = HostPort(host: address.host, port: server.localPort)
        print("mediator \(transform) listening on \(bound)")
        fflush(nil)
        Self.waitForTermination()
        server.close()
        try? group.syncShutdownGracefully()
    }

    /// Blocks until SIGTERM or SIGINT.
    private static func waitForTermination() {
        let received = DispatchSemaphore(value: 0)
        let sources = [SIGTERM, SIGINT].map { number in
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
            source.setEventHandler { received.signal() }
            source.resume()
            return source
        }
        received.wait()
        sources.forEach { $0.cancel() }
    }
}
