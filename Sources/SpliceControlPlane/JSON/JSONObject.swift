/// The members of a JSON object, in insertion order, with keyed lookup.
///
/// Kept as a plain array: API objects have a handful of keys, where a linear scan beats
/// hashing, and iteration (what serialization does) is just the array's. Equality ignores
/// member order: two objects are equal when they hold the same keys with equal values, as
/// JSON defines it.
public struct JSONObject: Sendable, Equatable, Sequence {
    private var members: [(key: String, value: JSON)] = []

    /// An empty object.
    public init() {}

    /// An object from key/value pairs; a repeated key keeps its first
    /// position and its last value.
    public init<S: Sequence>(_ pairs: S) where S.Element == (String, JSON) {
        for (key, value) in pairs { self[key] = value }
    }

    /// An object from members whose keys are known to be distinct (a parsed object).
    init(uniqueMembers: [(key: String, value: JSON)]) {
        members = uniqueMembers
    }

    /// The keys in insertion order.
    public var keys: [String] { members.map(\.key) }

    /// The number of members.
    public var count: Int { members.count }

    /// Whether the object has no members.
    public var isEmpty: Bool { members.isEmpty }

    /// The value for `key`; assigning `nil` removes the member, assigning a new
    /// key appends it at the end.
    public subscript(key: String) -> JSON? {
        get { members.first { $0.key == key }?.value }
        set {
            let index = members.firstIndex { $0.key == key }
            switch (index, newValue) {
            case (let index?, let value?): members[index].value = value
            case (let index?, nil): members.remove(at: index)
            case (nil, let value?): members.append((key, value))
            case (nil, nil): break
            }
        }
    }

    /// Iterates the members in insertion order.
    public func makeIterator() -> IndexingIterator<[(key: String, value: JSON)]> {
        members.makeIterator()
    }

    /// Equal when both hold the same keys with equal values, in any order.
    public static func == (lhs: JSONObject, rhs: JSONObject) -> Bool {
        lhs.count == rhs.count && lhs.members.allSatisfy { rhs[$0.key] == $0.value }
    }
}
