import SpliceCore
import Synchronization

/// The registered mediators, and how many hops and listener templates use each (a
/// mediator used by either cannot be unregistered).
final class MediatorRegistry: Sendable {
    private struct Entry {
        var spec: MediatorSpec
        /// Hops spliced with it now (what the API reports as `in_use`).
        var inUse = 0
        /// Listener templates naming it.
        var templates = 0
    }

    private let entries = Mutex<[MediatorName: Entry]>([:])

    init() {}

    /// Adds a mediator; 409 when the name is taken.
    func register(_ spec: MediatorSpec) throws(APIError) {
        try entries.withLock { entries throws(APIError) in
            guard entries[spec.name] == nil else { throw .conflict("mediator '\(spec.name)' is already registered") }
            entries[spec.name] = Entry(spec: spec)
        }
    }

    /// Removes a mediator; 404 when unknown, 409 while spliced anywhere.
    func unregister(_ name: MediatorName) throws(APIError) {
        try entries.withLock { entries throws(APIError) in
            guard let entry = entries[name] else { throw .notFound("no mediator '\(name)'") }
            guard entry.inUse == 0 else {
                throw .conflict("mediator '\(name)' is spliced into \(entry.inUse) hop(s); remove them first")
            }
            guard entry.templates == 0 else {
                throw .conflict("mediator '\(name)' is a template of \(entry.templates) listener(s); remove them first")
            }
            entries[name] = nil
        }
    }

    /// One mediator and its use count.
    func lookUp(_ name: MediatorName) -> (spec: MediatorSpec, inUse: Int)? {
        entries.withLock { $0[name].map { ($0.spec, $0.inUse) } }
    }

    /// Every mediator with its use count, by name.
    func all() -> [(spec: MediatorSpec, inUse: Int)] {
        entries.withLock { $0.values.map { ($0.spec, $0.inUse) } }.sorted { $0.spec.name < $1.spec.name }
    }

    /// Takes a use of a mediator for a new hop; 409 when it is not registered: the request is
    /// valid, the registry's current state refuses it (register the mediator first).
    func acquire(_ name: MediatorName) throws(APIError) -> (MediatorSpec, MediatorLease) {
        let spec = try entries.withLock { entries throws(APIError) in
            guard var entry = entries[name] else { throw .conflict("no registered mediator '\(name)'") }
            entry.inUse += 1
            entries[name] = entry
            return entry.spec
        }
        return (spec, MediatorLease(name: name, registry: self))
    }

    /// Gives back a use taken by `acquire`; only its `MediatorLease` calls this, once.
    func giveBack(_ name: MediatorName) {
        entries.withLock { entries in
            entries[name]?.inUse -= 1
        }
    }

    /// The mediator a request names, with a use taken on a registered one.
    func resolve(_ target: HopRequest.Target, allowAdHoc: Bool) throws(APIError) -> (MediatorSpec, MediatorLease?) {
        switch target {
        case .registered(let name):
            let (spec, lease) = try acquire(name)
            return (spec, lease)
        case .address(let address):
            guard allowAdHoc else { throw .invalid("ad-hoc mediator addresses are disabled by the config") }
            return (MediatorSpec(name: MediatorName("\(address)"), kind: .tcp(address)), nil)
        }
    }

    /// Records a listener template naming `name`; 409 when it is not registered.
    func holdForTemplate(_ name: MediatorName) throws(APIError) {
        try entries.withLock { entries throws(APIError) in
            guard entries[name] != nil else {
                throw .conflict("listener mediator template names no registered mediator '\(name)'")
            }
            entries[name]?.templates += 1
        }
    }

    /// Lets go of a template's hold.
    func releaseTemplate(_ name: MediatorName) {
        entries.withLock { $0[name]?.templates -= 1 }
    }
}
