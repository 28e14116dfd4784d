import SpliceCore
import Testing

@testable import SpliceDataPlane

/// The registry's use counts, and a mediator retired while hops hold it (deleted in a
/// cluster while a splice here raced the deletion).
@Suite("Mediator registry")
struct MediatorRegistryTests {
    private let name = MediatorName("upper")

    private func spec(_ port: Int) -> MediatorSpec {
        MediatorSpec(name: name, kind: .tcp(HostPort(host: "127.0.0.1", port: port)))
    }

    @Test func aRetiredMediatorIsGoneForEverythingNewAndKeptForTheHopsThatHoldIt() throws {
        let registry = MediatorRegistry()
        try registry.register(spec(1))
        let (_, held) = try registry.acquire(name)
        #expect(registry.retire(name))
        #expect(registry.lookUp(name) == nil)
        #expect(registry.all().isEmpty)
        #expect(throws: APIError.self) { try registry.acquire(name) }
        #expect(registry.retiredInUse == 1)

        // The name is free again; the new registration's uses are its own.
        try registry.register(spec(2))
        let (newSpec, fresh) = try registry.acquire(name)
        #expect(newSpec == spec(2))
        held.release()
        #expect(registry.retiredInUse == 0)
        #expect(registry.lookUp(name)?.inUse == 1)
        fresh.release()
        #expect(registry.lookUp(name)?.inUse == 0)
        try registry.unregister(name)
    }

    @Test func retiringAnUnusedMediatorRemovesItAndAnUnknownOneIsNothing() throws {
        let registry = MediatorRegistry()
        try registry.register(spec(1))
        #expect(registry.retire(name))
        #expect(registry.retiredInUse == 0)
        #expect(!registry.retire(name))
        #expect(throws: APIError.self) { try registry.unregister(name) }
    }

    @Test func unregisteringIsRefusedWhileAHopHoldsIt() throws {
        let registry = MediatorRegistry()
        try registry.register(spec(1))
        let (_, lease) = try registry.acquire(name)
        #expect(throws: APIError.self) { try registry.unregister(name) }
        lease.release()
        lease.release()
        #expect(registry.lookUp(name)?.inUse == 0)
        try registry.unregister(name)
    }
}
