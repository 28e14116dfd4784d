/// A set whose members count how often they were inserted: one stays a member until it
/// has been removed as often (two overlapping API changes to one listener, say).
struct CountedSet<Member: Hashable & Sendable>: Sendable {
    private var counts: [Member: Int] = [:]

    mutating func insert(_ member: Member) {
        counts[member, default: 0] += 1
    }

    mutating func remove(_ member: Member) {
        guard let count = counts[member] else { return }
        counts[member] = count > 1 ? count - 1 : nil
    }

    func contains(_ member: Member) -> Bool {
        counts[member] != nil
    }
}

extension CountedSet {
    /// Whether no member is in.
    var isEmpty: Bool { counts.isEmpty }

    /// The members, each once.
    var members: Set<Member> { Set(counts.keys) }
}
