import Foundation

/// What a command prints: an API object as JSON (`--json`) or text for people.
struct Output: Sendable {
    private let jsonData: @Sendable () throws -> Data?
    private let text: String

    /// `value` (a generated schema type, encoded with the API's field names) or `text`.
    static func object<T: Encodable & Sendable>(_ value: T, text: String) -> Output {
        Output(jsonData: { try encoder().encode(value) }, text: text)
    }

    /// Only text; `--json` prints nothing (the API answered 204 No Content).
    static func done(_ text: String) -> Output {
        Output(jsonData: { nil }, text: text)
    }

    /// RFC 3339 dates with second precision, as the API writes them.
    static func encoder() -> JSONEncoder {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        encoder.dateEncodingStrategy = .iso8601
        return encoder
    }

    /// Writes the JSON (with `json`) or the text to stdout.
    func print(json: Bool) throws {
        if json {
            guard var data = try jsonData() else { return }
            data.append(UInt8(ascii: "\n"))
            FileHandle.standardOutput.write(data)
        } else if !text.isEmpty {
            FileHandle.standardOutput.write(Data((text.hasSuffix("\n") ? text : text + "\n").utf8))
        }
    }
}
