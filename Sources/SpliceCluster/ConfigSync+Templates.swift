import SpliceCore

extension ConfigSync {
    /// The listeners whose template splices the registered mediator `name`: those of the
    /// database as of the last reconciliation, and those held here.
    func listeners(splicing name: MediatorName) -> [ListenerID] {
        var specs = known.withLock { $0.mapValues(\.spec) }
        for listener in gateway.listeners() { specs[listener.id] = listener.spec }
        return specs.filter { $0.value.mediators.contains { $0.target == .registered(name) } }.map(\.key)
            .sorted { $0.number < $1.number }
    }
}
