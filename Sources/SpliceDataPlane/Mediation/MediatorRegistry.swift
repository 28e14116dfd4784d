import SpliceCore
import Synchronization

/// The registered mediators, and how many hops and listener templates use each (a
/// mediator used by either cannot be unregistered).
///
/// A mediator can also be *retired*: deleted from a cluster while hops here still use it
/// (a splice here raced the deletion through another node). It is then gone for
/// everything new (not listed, not spliced, its name free to register again) and kept
/// only for the hops that hold it, until the last one lets go.
final class MediatorRegistry: Sendable {
    private struct Entry {
        var spec: MediatorSpec
        /// Hops spliced with it now (what the API reports as `in_use`).
        var inUse = 0
        /// Listener templates naming it.
        var templates = 0
        /// Which registration of the name this is: a lease gives its use back to the
        /// registration it took it from, retired or not.
        var generation: UInt64
    }

    private struct State {
        var entries: [MediatorName: Entry] = [:]
        /// Retired registrations still held by hops, by generation.
        var retired: [UInt64: Entry] = [:]
        var nextGeneration: UInt64 = 0
    }

    private let state = Mutex(State())

    init() {}

    /// Adds a mediator; 409 when the name is taken.
    func register(_ spec: MediatorSpec) throws(APIError) {
        try state.withLock { state throws(APIError) in
            guard state.entries[spec.name] == nil else {
                throw .conflict("mediator '\(spec.name)' is already registered")
            }
            state.nextGeneration += 1
            state.entries[spec.name] = Entry(spec: spec, generation: state.nextGeneration)
        }
    }

    /// Removes a mediator deleted elsewhere (a cluster's database) whatever uses it here:
    /// at once when nothing does, else retired until its hops let go. False when unknown.
    @discardableResult
    func retire(_ name: MediatorName) -> Bool {
        state.withLock { state in
            guard let entry = state.entries.removeValue(forKey: name) else { return false }
            if entry.inUse > 0 { state.retired[entry.generation] = entry }
            return true
        }
    }

    /// Retired registrations still in use (for logs and tests).
    var retiredInUse: Int { state.withLock { $0.retired.count } }

    /// Removes a mediator; 404 when unknown, 409 while spliced anywhere.
    func unregister(_ name: MediatorName) throws(APIError) {
        try state.withLock { state throws(APIError) in
            guard let entry = state.entries[name] else { throw .notFound("no mediator '\(name)'") }
            guard entry.inUse == 0 else {
                throw .conflict("mediator '\(name)' is spliced into \(entry.inUse) hop(s); remove them first")
            }
            guard entry.templates == 0 else {
                throw .conflict("mediator '\(name)' is a template of \(entry.templates) listener(s); remove them first")
            }
            state.entries[name] = nil
        }
    }

    /// One mediator and its use count.
    func lookUp(_ name: MediatorName) -> (spec: MediatorSpec, inUse: Int)? {
        state.withLock { $0.entries[name].map { ($0.spec, $0.inUse) } }
    }

    /// Every mediator with its use count, by name.
    func all() -> [(spec: MediatorSpec, inUse: Int)] {
        state.withLock { $0.entries.values.map { ($0.spec, $0.inUse) } }.sorted { $0.spec.name < $1.spec.name }
    }

    /// Takes a use of a mediator for a new hop; 409 when it is not registered: the request is
    /// valid, the registry's current state refuses it (register the mediator first).
    func acquire(_ name: MediatorName) throws(APIError) -> (MediatorSpec, MediatorLease) {
        let (spec, generation) = try state.withLock { state throws(APIError) in
            guard var entry = state.entries[name] else { throw .conflict("no registered mediator '\(name)'") }
            entry.inUse += 1
            state.entries[name] = entry
            return (entry.spec, entry.generation)
        }
        return (spec, MediatorLease(name: name, generation: generation, registry: self))
    }

    /// Gives back a use taken by `acquire`; only its `MediatorLease` calls this, once. A
    /// retired registration goes with its last use.
    func giveBack(_ name: MediatorName, generation: UInt64) {
        state.withLock { state in
            if state.entries[name]?.generation == generation {
                state.entries[name]?.inUse -= 1
            } else if var entry = state.retired[generation] {
                entry.inUse -= 1
                state.retired[generation] = entry.inUse > 0 ? entry : nil
            }
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
        try state.withLock { state throws(APIError) in
            guard state.entries[name] != nil else {
                throw .conflict("listener mediator template names no registered mediator '\(name)'")
            }
            state.entries[name]?.templates += 1
        }
    }

    /// Lets go of a template's hold (of the registration of `name` now: a template's
    /// listener is stopped before its mediator can be deleted anywhere).
    func releaseTemplate(_ name: MediatorName) {
        state.withLock { $0.entries[name]?.templates -= 1 }
    }
}
