import SpliceCore
import Testing

@testable import SpliceControlPlane

@Suite("JSON")
struct JSONTests {
    @Test func roundTripsEveryKind() throws {
        let value: JSON = [
            "null": nil, "true": true, "false": false, "int": -42, "double": 1.5,
            "string": "text", "array": [1, "two", [3]], "object": ["nested": ["deep": true]],
        ]
        let text = value.serialized()
        #expect(text == #"{"null":null,"true":true,"false":false,"int":-42,"double":1.5,"string":"text","array":[1,"two",[3]],"object":{"nested":{"deep":true}}}"#)
        #expect(try JSON.parse(text) == value)
    }

    @Test func keepsInsertionOrder() throws {
        var object = JSONObject()
        object["zeta"] = 1
        object["alpha"] = 2
        object["mid"] = 3
        object["alpha"] = 4  // an update keeps the position
        #expect(JSON.object(object).serialized() == #"{"zeta":1,"alpha":4,"mid":3}"#)
        object["zeta"] = nil
        #expect(object.keys == ["alpha", "mid"])
        let parsed = try JSON.parse(#"{"b":1,"a":2,"c":3}"#)
        #expect(parsed.object?.keys == ["b", "a", "c"])
        #expect(parsed.serialized() == #"{"b":1,"a":2,"c":3}"#)
        // Equality is JSON's: member order does not matter.
        #expect(parsed == ["a": 2, "b": 1, "c": 3])
    }

    @Test func unicodeAndEscapes() throws {
        let parsed = try JSON.parse(#"["é", "\u00e9", "\ud83d\ude00", "a\u0000b", "tab\tq\"s\\", "😀"]"#)
        #expect(parsed == ["é", "é", "😀", "a\u{0}b", "tab\tq\"s\\", "😀"])
        let serialized = parsed.serialized()
        #expect(serialized == #"["é","é","😀","a\u0000b","tab\tq\"s\\","😀"]"#)
        #expect(try JSON.parse(serialized) == parsed)
        #expect(JSON.object(JSONObject([("ключ", "値")])).serialized() == #"{"ключ":"値"}"#)
    }

    @Test func bigIntegers() throws {
        #expect(try JSON.parse("9223372036854775807") == .int(.max))
        #expect(try JSON.parse("-9223372036854775808") == .int(.min))
        #expect(JSON.int(.max).serialized() == "9223372036854775807")
        #expect(JSON.int(.min).serialized() == "-9223372036854775808")
        // Beyond Int64 jansson refuses rather than rounding.
        let error = try #require(throws: APIError.self) { try JSON.parse("9223372036854775808") }
        #expect(error.status == 400)
        #expect(error.detail.contains("too big"), "\(error.detail)")
        #expect(try JSON.parse("1e3") == .double(1000))
    }

    @Test func doublesAndNonFinite() throws {
        #expect(JSON.double(0.25).serialized() == "0.25")
        #expect(JSON.double(.nan).serialized() == "null")
        #expect(JSON.double(.infinity).serialized() == "null")
        #expect(try JSON.parse("0.1").double == 0.1)
        #expect(JSON.int(3).double == 3)
        #expect(JSON.double(3).int == nil)
    }

    @Test func topLevelScalars() throws {
        #expect(try JSON.parse("42") == 42)
        #expect(try JSON.parse(" \"s\" ") == "s")
        #expect(try JSON.parse("null") == nil)
        #expect(JSON.string("s").serialized() == #""s""#)
    }

    @Test func errorsCarryLineAndColumn() throws {
        let error = try #require(throws: APIError.self) { try JSON.parse("{\n  \"a\": tru\n}") }
        #expect(error.status == 400)
        #expect(error.detail.hasPrefix("invalid JSON at line 2, column"), "\(error.detail)")
        let single = try #require(throws: APIError.self) { try JSON.parse(#"{"a" 1}"#) }
        #expect(single.detail.hasPrefix("invalid JSON at line 1, column 6:"), "\(single.detail)")
    }

    @Test func rejectsDuplicatesTrailingGarbageAndEmpty() {
        for bad in [#"{"a":1,"a":2}"#, "{} x", "[1] [2]", "", "   ", "{", "\u{FF}", "'a'", "[1,]", "NaN"] {
            #expect(throws: APIError.self, "\(bad)") { try JSON.parse(bad) }
        }
        #expect(throws: APIError.self) { try JSON.parse([0x22, 0xFF, 0x22]) }  // invalid UTF-8
    }

    @Test func accessors() throws {
        let json = try JSON.parse(#"{"s":"x","i":7,"b":true,"a":[1,2],"o":{"k":null}}"#)
        #expect(json["s"]?.string == "x")
        #expect(json["i"]?.int == 7)
        #expect(json["b"]?.bool == true)
        #expect(json["a"]?[1] == 2)
        #expect(json["a"]?[5] == nil)
        #expect(json["o"]?["k"]?.isNull == true)
        #expect(json["missing"] == nil)
        #expect(json["s"]?.int == nil)
        #expect(json.typeName == "object")
    }
}

@Suite("JSONObjectReader")
struct JSONObjectReaderTests {
    let allowed: Set<String> = ["listen", "name", "enabled", "limit", "kind"]

    @Test func readsTypedFields() throws {
        let reader = try JSONObjectReader(
            ["listen": "127.0.0.1:0", "enabled": true, "limit": 10, "kind": "tcp"], allowed: allowed)
        #expect(try reader.requiredString("listen") == "127.0.0.1:0")
        #expect(try reader.optionalString("name") == nil)
        #expect(try reader.optionalBool("enabled") == true)
        #expect(try reader.optionalInt("limit", min: 1, max: 1000) == 10)
        #expect(try reader.optionalEnum("kind", ["tcp", "exec"]) == "tcp")
        #expect(!reader.contains("name"))
    }

    @Test func nullIsNotAbsent() throws {
        // No request field is nullable in openapi.yaml: null is a 422 naming the field.
        let reader = try JSONObjectReader(["name": nil, "limit": nil, "enabled": nil], allowed: allowed)
        for read in [{ _ = try reader.optionalString("name") }, { _ = try reader.optionalInt("limit") },
                     { _ = try reader.optionalBool("enabled") }, { _ = try reader.requiredString("name") }] {
            let error = #expect(throws: APIError.self) { try read() }
            #expect(error?.status == 422)
            #expect(error?.detail.contains("must not be null") == true)
        }
        #expect(reader.contains("name"))
    }

    @Test func rejectsWithFieldNames() throws {
        func detail(_ body: () throws -> Void) -> String? {
            do { try body() } catch let error as APIError { return error.status == 422 ? error.detail : nil } catch {}
            return nil
        }
        #expect(detail { _ = try JSONObjectReader(["listen": "x", "bogus": 1], allowed: allowed) } == "unknown field 'bogus'")
        #expect(detail { _ = try JSONObjectReader([1, 2], allowed: allowed) } == "body must be a JSON object")
        let reader = try JSONObjectReader(["listen": 5, "limit": 5000, "enabled": "yes", "kind": "udp"], allowed: allowed)
        #expect(detail { _ = try reader.requiredString("listen") } == "field 'listen' must be a string, got integer")
        #expect(detail { _ = try reader.requiredString("name") } == "field 'name' is required")
        #expect(detail { _ = try reader.optionalInt("limit", min: 1, max: 1000) }?.contains("between 1 and 1000") == true)
        #expect(detail { _ = try reader.optionalBool("enabled") } == "field 'enabled' must be a boolean, got string")
        #expect(detail { _ = try reader.optionalEnum("kind", ["tcp", "exec"]) }?.contains("'tcp', 'exec'") == true)
    }

    /// JSON Schema counts `5.0` as an integer, so the contract's valid data includes it.
    @Test func integralNumbersAreIntegers() throws {
        let body = try JSON.parse(Array(#"{"a": 5.0, "b": 1e3, "c": 2.5, "d": 1e300, "e": -0.0}"#.utf8))
        let reader = try JSONObjectReader(body, allowed: ["a", "b", "c", "d", "e"])
        #expect(try reader.optionalInt("a") == 5)
        #expect(try reader.optionalInt("b", min: 1, max: 1000) == 1000)
        #expect(try reader.optionalInt("e") == 0)
        #expect(throws: APIError.invalid("field 'c' must be an integer, got number")) { try reader.optionalInt("c") }
        #expect(throws: APIError.invalid("field 'd' must be an integer, got number")) { try reader.optionalInt("d") }
    }
}
