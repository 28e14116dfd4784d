import NIOCore
import SpliceCore

@testable import SpliceDataPlane

/// One direction run in memory, both ends and every mediator, one byte at a time (as
/// swift-nio-ssh tests its machines): the sender's bytes enter the way `Session.forward`
/// passes them (`Link.carry` on the sender's out-link), and each spliced mediator answers
/// what it was written through its own byte transform, also byte by byte.
final class MemoryDirection {
    let path: DirectionPath
    /// The endpoint whose reads feed the path.
    let sender: Port
    /// The endpoint the path writes.
    let receiver: Port
    private var mediators: [Mediator] = []

    private final class Mediator {
        let port: Port
        let transform: (UInt8) -> [UInt8]
        /// How much of what was written to the port it has answered.
        var answered = 0

        init(port: Port, transform: @escaping (UInt8) -> [UInt8]) {
            self.port = port
            self.transform = transform
        }
    }

    init(_ direction: Direction) {
        sender = .inMemory(direction == .clientToServer ? .client : .server)
        receiver = .inMemory(direction == .clientToServer ? .server : .client)
        path = DirectionPath(direction: direction, from: sender, to: receiver)
    }

    /// Everything the receiver has been written.
    var received: [UInt8] { receiver.memory.written }

    /// A mediator port for this direction (the id only names it).
    func mediatorPort(_ number: UInt64) -> Port {
        // The one line that names the id type.
        .inMemory(.hop(HopID(number: number), path.direction))
    }

    /// Splices a mediator that answers each byte with `transform(byte)`.
    @discardableResult
    func splice(_ port: Port, atLink index: Int, _ transform: @escaping (UInt8) -> [UInt8]) -> (feed: Link, out: Link) {
        mediators.append(Mediator(port: port, transform: transform))
        return path.splice(port, atLink: index)
    }

    /// Sends bytes from the sender one at a time; mediators answer after each unless told not to.
    func send<Bytes: Sequence<UInt8>>(_ bytes: Bytes, answering: Bool = true) {
        for byte in bytes {
            feed(byte, into: sender)
            if answering { answer() }
        }
    }

    /// Lets every mediator still wired answer what it has been written and not answered.
    func answer() {
        var progress = true
        while progress {
            progress = false
            for mediator in mediators where mediator.port.outLink != nil {
                let written = mediator.port.memory.written
                while mediator.answered < written.count, mediator.port.outLink != nil {
                    let byte = written[mediator.answered]
                    mediator.answered += 1
                    mediator.transform(byte).forEach { feed($0, into: mediator.port) }
                    progress = true
                }
            }
        }
    }

    /// Passes bytes a removal handed back over the link that replaced the hop, as the
    /// session does.
    func forward(_ held: [ByteBuffer], over link: Link) {
        for buffer in held {
            buffer.withUnsafeReadableBytes { link.pass($0) }
        }
    }

    private func feed(_ byte: UInt8, into port: Port) {
        guard let link = port.outLink else { preconditionFailure("\(port.role) feeds no link") }
        _ = withUnsafeBytes(of: byte) { link.carry($0) }
    }
}
