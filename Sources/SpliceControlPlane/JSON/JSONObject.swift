/// The members of a JSON object, in insertion order, with keyed lookup.
///
/// Equality ignores member order: two objects are equal when they hold the
/// same keys with equal values, as JSON defines it.
public struct JSONObject: Sendable, Equatable, Sequence {
    private var order: [String] = []
    private var values: [String: JSON] = [:]

    /// An empty object.
    public init() {}

    /// An object from key/value pairs; a repeated key keeps its first
    /// position and its last value.
    public init<S: Sequence>(_ pairs: S) where S.Element == (String, JSON) {
        for (key, value) in pairs { self[key] = value }
    }

    /// The keys in insertion order.
    public var keys: [String] { order }

    /// The number of members.
    public var count: Int { order.count }

    /// Whether the object has no members.
    public var isEmpty: Bool { order.isEmpty }

    /// The value for `key`; assigning `nil` removes the member, assigning a new
    /// key appends it at the end.
    public subscript(key: String) -> JSON? {
        get { values[key] }
        set {
            if let newValue {
                if values.updateValue(newValue, forKey: key) == nil { order.append(key) }
            } else if values.removeValue(forKey: key) != nil {
                order.removeAll { $0 == key }
            }
        }
    }

    /// Iterates the members in insertion order.
    public func makeIterator() -> some IteratorProtocol<(key: String, value: JSON)> {
        var index = 0
        let order = order
        let values = values
        return AnyIterator {
            guard index < order.count else { return nil }
            let key = order[index]
            index += 1
            // Every key in `order` is in `values`; the fallback is unreachable.
            return (key, values[key] ?? .null)
        }
    }

    /// Equal when both hold the same keys with equal values, in any order.
    public static func == (lhs: JSONObject, rhs: JSONObject) -> Bool {
        lhs.values == rhs.values
    }
}
