import SpliceCapture
import SpliceCore

/// Where in a session bytes are seen: on one of its legs, or on either side of a hop.
enum CapturePoint: Hashable {
    /// The client's connection to the gateway.
    case client
    /// The gateway's connection to the server.
    case server
    /// What enters a hop.
    case hopIn(HopID)
    /// What leaves a hop.
    case hopOut(HopID)

    /// The pcapng interface name.
    var name: String {
        switch self {
        case .client: "client"
        case .server: "server"
        case .hopIn(let hop): "\(hop).in"
        case .hopOut(let hop): "\(hop).out"
        }
    }

    /// The point where bytes read from `port` are seen: a hop's output.
    static func reading(_ port: Port) -> CapturePoint? { at(port, hopPoint: CapturePoint.hopOut) }

    /// The point where bytes written into `port` are seen: a hop's input.
    static func writing(_ port: Port) -> CapturePoint? { at(port, hopPoint: CapturePoint.hopIn) }

    /// An endpoint's leg, or the given side of a hop; nothing for a split recipient.
    private static func at(_ port: Port, hopPoint: (HopID) -> CapturePoint) -> CapturePoint? {
        switch port.role {
        case .client: .client
        case .server: .server
        case .hop(let id, _): hopPoint(id)
        case .split: nil
        }
    }
}

extension Direction {
    /// The side of a synthesized connection that sends this direction's bytes: every point
    /// is drawn as a connection the client side opened.
    var sender: ConversationSide {
        self == .clientToServer ? .initiator : .responder
    }
}
