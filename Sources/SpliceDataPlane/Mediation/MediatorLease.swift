import SpliceCore
import Synchronization

/// One use of a registered mediator, taken for a hop and given back at most once.
///
/// A hop can end in several ways (drained, failed, dropped after a drain timeout, its
/// session ending) and more than one of them can be under way at once; whichever comes
/// first gives the use back, the others find nothing left to give, so `in_use` never
/// drops below the number of hops that really hold the mediator.
final class MediatorLease: Sendable {
    /// The mediator's name.
    let name: MediatorName
    /// The registration of `name` it was taken from.
    private let generation: UInt64
    private let registry: MediatorRegistry
    private let released = Atomic<Bool>(false)

    /// Wraps a use that `registry` has already counted.
    init(name: MediatorName, generation: UInt64, registry: MediatorRegistry) {
        self.name = name
        self.generation = generation
        self.registry = registry
    }

    /// Gives the use back; later calls do nothing.
    func release() {
        guard !released.exchange(true, ordering: .acquiringAndReleasing) else { return }
        registry.giveBack(name, generation: generation)
    }
}
