import SpliceCore

/// Reads the fields of a request body object, turning every shape problem
/// into a 422 that names the field.
///
/// Unknown fields are rejected up front so a typo ("drain_timeout" for
/// "drain_timeout_ms") never silently falls back to a default. No request
/// field is nullable in the API, so an explicit `null` is a 422, not a
/// silent "absent".
public struct JSONObjectReader: Sendable {
    /// The object being read.
    public let object: JSONObject

    /// Accepts `json` if it is an object whose keys are all in `allowed`.
    public init(_ json: JSON, allowed: Set<String>) throws(APIError) {
        guard case .object(let object) = json else {
            throw .invalid("body must be a JSON object")
        }
        if let unknown = object.keys.first(where: { !allowed.contains($0) }) {
            throw .invalid("unknown field '\(unknown)'")
        }
        self.object = object
    }

    /// Whether `key` is present (`null` included).
    public func contains(_ key: String) -> Bool {
        object[key] != nil
    }

    /// The raw value of `key`, `nil` when absent; throws for `null`.
    public func value(_ key: String) throws(APIError) -> JSON? {
        guard let value = object[key] else { return nil }
        guard value != .null else { throw .invalid("field '\(key)' must not be null; leave it out for the default") }
        return value
    }

    /// A string field that must be present.
    public func requiredString(_ key: String) throws(APIError) -> String {
        guard let value = try optionalString(key) else { throw .invalid("field '\(key)' is required") }
        return value
    }

    /// A string field that may be absent.
    public func optionalString(_ key: String) throws(APIError) -> String? {
        guard let value = try value(key) else { return nil }
        guard let string = value.string else { throw mistyped(key, "a string", value) }
        return string
    }

    /// A boolean field that may be absent.
    public func optionalBool(_ key: String) throws(APIError) -> Bool? {
        guard let value = try value(key) else { return nil }
        guard let bool = value.bool else { throw mistyped(key, "a boolean", value) }
        return bool
    }

    /// An integer field that must be present and lie in `min...max`.
    public func requiredInt(_ key: String, min: Int64 = .min, max: Int64 = .max) throws(APIError) -> Int64 {
        guard let value = try optionalInt(key, min: min, max: max) else {
            throw .invalid("field '\(key)' is required")
        }
        return value
    }

    /// An integer field that may be absent and otherwise lies in `min...max`. A number with
    /// no fractional part (`5.0`, `1e3`) is an integer, as JSON Schema (and so the OpenAPI
    /// contract) counts it.
    public func optionalInt(_ key: String, min: Int64 = .min, max: Int64 = .max) throws(APIError) -> Int64? {
        guard let value = try value(key) else { return nil }
        guard let int = value.int ?? value.double.flatMap({ Int64(exactly: $0) }) else {
            throw mistyped(key, "an integer", value)
        }
        guard int >= min, int <= max else {
            throw .invalid("field '\(key)' must be between \(min) and \(max), got \(int)")
        }
        return int
    }

    /// An object field that may be absent.
    public func optionalObject(_ key: String) throws(APIError) -> JSONObject? {
        guard let value = try value(key) else { return nil }
        guard let object = value.object else { throw mistyped(key, "an object", value) }
        return object
    }

    /// An array field that may be absent.
    public func optionalArray(_ key: String) throws(APIError) -> [JSON]? {
        guard let value = try value(key) else { return nil }
        guard let array = value.array else { throw mistyped(key, "an array", value) }
        return array
    }

    /// A string field restricted to `choices`, e.g. `direction`.
    public func optionalEnum(_ key: String, _ choices: [String]) throws(APIError) -> String? {
        guard let string = try optionalString(key) else { return nil }
        guard choices.contains(string) else {
            let list = choices.map { "'\($0)'" }.joined(separator: ", ")
            throw .invalid("field '\(key)' must be one of \(list), got '\(string)'")
        }
        return string
    }

    private func mistyped(_ key: String, _ expected: String, _ value: JSON) -> APIError {
        .invalid("field '\(key)' must be \(expected), got \(value.typeName)")
    }
}
