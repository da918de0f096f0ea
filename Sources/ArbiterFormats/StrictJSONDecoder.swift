// A Decoder over StrictJSON's values: how JSONFile decodes config.json, preprocessor_config.json and prompt
// layouts. JSONDecoder cannot serve there: it reads `2.0` and `1e9` in an integer field as 2 and 1000000000,
// and reports `2.5` as "The given data was not valid JSON". This decoder keeps how a number was written: an
// integer field takes only an integer literal (Python's json, which writes these files, reads `2.0` and `1e9`
// as floats, which transformers does not take as a size either), a floating-point field takes any finite
// number, and every mismatch reads "must be …, found …" under the field's key path (JSONFile.describe).

import ArbiterJSON

struct StrictJSONDecoder: Decoder {
    let value: JSONValue
    let codingPath: [CodingKey]
    var userInfo: [CodingUserInfoKey: Any] { [:] }

    init(_ value: JSONValue, codingPath: [CodingKey] = []) {
        self.value = value
        self.codingPath = codingPath
    }

    func container<Key: CodingKey>(keyedBy type: Key.Type) throws -> KeyedDecodingContainer<Key> {
        guard let object = value.members else {
            throw Scalar.mismatch([String: Any].self, codingPath, "must be an object, found \(value.kindName)")
        }
        return KeyedDecodingContainer(KeyedContainer<Key>(object: object, codingPath: codingPath))
    }

    func unkeyedContainer() throws -> UnkeyedDecodingContainer {
        guard case .array(let array) = value else {
            throw Scalar.mismatch([Any].self, codingPath, "must be an array, found \(value.kindName)")
        }
        return UnkeyedContainer(array: array, codingPath: codingPath)
    }

    func singleValueContainer() throws -> SingleValueDecodingContainer {
        SingleValueContainer(value: value, codingPath: codingPath)
    }
}

/// The scalar conversions every container shares.
private enum Scalar {
    static func mismatch(_ type: Any.Type, _ path: [CodingKey], _ problem: String) -> DecodingError {
        .typeMismatch(type, .init(codingPath: path, debugDescription: problem))
    }

    static func bool(_ value: JSONValue, _ path: [CodingKey]) throws -> Bool {
        guard case .bool(let b) = value else {
            throw mismatch(Bool.self, path, "must be true or false, found \(value.kindName)")
        }
        return b
    }

    static func string(_ value: JSONValue, _ path: [CodingKey]) throws -> String {
        guard case .string(let s) = value else {
            throw mismatch(String.self, path, "must be a string, found \(value.kindName)")
        }
        return s
    }

    static func integer<T: FixedWidthInteger>(_ value: JSONValue, _ path: [CodingKey]) throws -> T {
        switch value {
        case .integer(let i):
            guard let exact = T(exactly: i) else {
                throw mismatch(T.self, path, "must be an integer in \(T.min)...\(T.max), found \(i)")
            }
            return exact
        case .number(let d):
            // A fraction, an exponent, or more digits than 64 bits hold.
            throw mismatch(T.self, path, "must be an integer, found \(d)")
        default:
            throw mismatch(T.self, path, "must be an integer, found \(value.kindName)")
        }
    }

    static func floatingPoint<T: BinaryFloatingPoint>(_ value: JSONValue, _ path: [CodingKey]) throws -> T {
        let d: Double
        switch value {
        case .integer(let i): d = Double(i)
        case .number(let n): d = n
        default: throw mismatch(T.self, path, "must be a number, found \(value.kindName)")
        }
        guard d.isFinite else {
            throw mismatch(T.self, path, "must be a finite number, found one beyond the 64-bit float range")
        }
        let converted = T(d)
        guard converted.isFinite else { throw mismatch(T.self, path, "must fit in a 32-bit float, found \(d)") }
        return converted
    }
}

/// An array element's or a super decoder's key.
private struct IndexKey: CodingKey {
    let intValue: Int?
    let stringValue: String
    init(_ index: Int) { intValue = index; stringValue = "\(index)" }
    init?(intValue: Int) { self.init(intValue) }
    init?(stringValue: String) { return nil }
}

private struct KeyedContainer<Key: CodingKey>: KeyedDecodingContainerProtocol {
    let object: [String: JSONValue]
    let codingPath: [CodingKey]

    var allKeys: [Key] { object.keys.compactMap { Key(stringValue: $0) } }
    func contains(_ key: Key) -> Bool { object[key.stringValue] != nil }

    func child(_ key: Key) throws -> JSONValue {
        guard let value = object[key.stringValue] else {
            throw DecodingError.keyNotFound(key, .init(codingPath: codingPath,
                                                       debugDescription: "required key is missing"))
        }
        return value
    }

    func decodeNil(forKey key: Key) throws -> Bool { try child(key).isNull }
    func decode(_ type: Bool.Type, forKey key: Key) throws -> Bool { try Scalar.bool(child(key), codingPath + [key]) }
    func decode(_ type: String.Type, forKey key: Key) throws -> String {
        try Scalar.string(child(key), codingPath + [key])
    }
    func decode(_ type: Double.Type, forKey key: Key) throws -> Double { try real(key) }
    func decode(_ type: Float.Type, forKey key: Key) throws -> Float { try real(key) }
    func decode(_ type: Int.Type, forKey key: Key) throws -> Int { try integer(key) }
    func decode(_ type: Int8.Type, forKey key: Key) throws -> Int8 { try integer(key) }
    func decode(_ type: Int16.Type, forKey key: Key) throws -> Int16 { try integer(key) }
    func decode(_ type: Int32.Type, forKey key: Key) throws -> Int32 { try integer(key) }
    func decode(_ type: Int64.Type, forKey key: Key) throws -> Int64 { try integer(key) }
    func decode(_ type: UInt.Type, forKey key: Key) throws -> UInt { try integer(key) }
    func decode(_ type: UInt8.Type, forKey key: Key) throws -> UInt8 { try integer(key) }
    func decode(_ type: UInt16.Type, forKey key: Key) throws -> UInt16 { try integer(key) }
    func decode(_ type: UInt32.Type, forKey key: Key) throws -> UInt32 { try integer(key) }
    func decode(_ type: UInt64.Type, forKey key: Key) throws -> UInt64 { try integer(key) }
    func decode<T: Decodable>(_ type: T.Type, forKey key: Key) throws -> T {
        try T(from: StrictJSONDecoder(child(key), codingPath: codingPath + [key]))
    }

    private func integer<T: FixedWidthInteger>(_ key: Key) throws -> T {
        try Scalar.integer(child(key), codingPath + [key])
    }
    private func real<T: BinaryFloatingPoint>(_ key: Key) throws -> T {
        try Scalar.floatingPoint(child(key), codingPath + [key])
    }

    func nestedContainer<NestedKey: CodingKey>(keyedBy type: NestedKey.Type,
                                               forKey key: Key) throws -> KeyedDecodingContainer<NestedKey> {
        try StrictJSONDecoder(child(key), codingPath: codingPath + [key]).container(keyedBy: type)
    }
    func nestedUnkeyedContainer(forKey key: Key) throws -> UnkeyedDecodingContainer {
        try StrictJSONDecoder(child(key), codingPath: codingPath + [key]).unkeyedContainer()
    }
    func superDecoder() throws -> Decoder {
        StrictJSONDecoder(object["super"] ?? .null, codingPath: codingPath + [IndexKey(0)])
    }
    func superDecoder(forKey key: Key) throws -> Decoder {
        StrictJSONDecoder(object[key.stringValue] ?? .null, codingPath: codingPath + [key])
    }
}

private struct UnkeyedContainer: UnkeyedDecodingContainer {
    let array: [JSONValue]
    let codingPath: [CodingKey]
    var currentIndex = 0

    var count: Int? { array.count }
    var isAtEnd: Bool { currentIndex >= array.count }

    /// Decodes the current element with `read`; the index moves on only when it succeeds (as JSONDecoder's).
    private mutating func next<T>(_ read: (JSONValue, [CodingKey]) throws -> T) throws -> T {
        let path = codingPath + [IndexKey(currentIndex)]
        guard !isAtEnd else {
            throw DecodingError.valueNotFound(T.self, .init(
                codingPath: path, debugDescription: "the array ends after \(array.count) elements"))
        }
        let result = try read(array[currentIndex], path)
        currentIndex += 1
        return result
    }

    mutating func decodeNil() throws -> Bool {
        guard !isAtEnd, array[currentIndex].isNull else { return false }
        currentIndex += 1
        return true
    }
    mutating func decode(_ type: Bool.Type) throws -> Bool { try next(Scalar.bool) }
    mutating func decode(_ type: String.Type) throws -> String { try next(Scalar.string) }
    mutating func decode(_ type: Double.Type) throws -> Double { try next(Scalar.floatingPoint) }
    mutating func decode(_ type: Float.Type) throws -> Float { try next(Scalar.floatingPoint) }
    mutating func decode(_ type: Int.Type) throws -> Int { try next(Scalar.integer) }
    mutating func decode(_ type: Int8.Type) throws -> Int8 { try next(Scalar.integer) }
    mutating func decode(_ type: Int16.Type) throws -> Int16 { try next(Scalar.integer) }
    mutating func decode(_ type: Int32.Type) throws -> Int32 { try next(Scalar.integer) }
    mutating func decode(_ type: Int64.Type) throws -> Int64 { try next(Scalar.integer) }
    mutating func decode(_ type: UInt.Type) throws -> UInt { try next(Scalar.integer) }
    mutating func decode(_ type: UInt8.Type) throws -> UInt8 { try next(Scalar.integer) }
    mutating func decode(_ type: UInt16.Type) throws -> UInt16 { try next(Scalar.integer) }
    mutating func decode(_ type: UInt32.Type) throws -> UInt32 { try next(Scalar.integer) }
    mutating func decode(_ type: UInt64.Type) throws -> UInt64 { try next(Scalar.integer) }
    mutating func decode<T: Decodable>(_ type: T.Type) throws -> T {
        try next { try T(from: StrictJSONDecoder($0, codingPath: $1)) }
    }

    mutating func nestedContainer<NestedKey: CodingKey>(
        keyedBy type: NestedKey.Type) throws -> KeyedDecodingContainer<NestedKey> {
        try next { try StrictJSONDecoder($0, codingPath: $1).container(keyedBy: type) }
    }
    mutating func nestedUnkeyedContainer() throws -> UnkeyedDecodingContainer {
        try next { try StrictJSONDecoder($0, codingPath: $1).unkeyedContainer() }
    }
    mutating func superDecoder() throws -> Decoder {
        try next { StrictJSONDecoder($0, codingPath: $1) }
    }
}

private struct SingleValueContainer: SingleValueDecodingContainer {
    let value: JSONValue
    let codingPath: [CodingKey]

    func decodeNil() -> Bool { value.isNull }
    func decode(_ type: Bool.Type) throws -> Bool { try Scalar.bool(value, codingPath) }
    func decode(_ type: String.Type) throws -> String { try Scalar.string(value, codingPath) }
    func decode(_ type: Double.Type) throws -> Double { try Scalar.floatingPoint(value, codingPath) }
    func decode(_ type: Float.Type) throws -> Float { try Scalar.floatingPoint(value, codingPath) }
    func decode(_ type: Int.Type) throws -> Int { try Scalar.integer(value, codingPath) }
    func decode(_ type: Int8.Type) throws -> Int8 { try Scalar.integer(value, codingPath) }
    func decode(_ type: Int16.Type) throws -> Int16 { try Scalar.integer(value, codingPath) }
    func decode(_ type: Int32.Type) throws -> Int32 { try Scalar.integer(value, codingPath) }
    func decode(_ type: Int64.Type) throws -> Int64 { try Scalar.integer(value, codingPath) }
    func decode(_ type: UInt.Type) throws -> UInt { try Scalar.integer(value, codingPath) }
    func decode(_ type: UInt8.Type) throws -> UInt8 { try Scalar.integer(value, codingPath) }
    func decode(_ type: UInt16.Type) throws -> UInt16 { try Scalar.integer(value, codingPath) }
    func decode(_ type: UInt32.Type) throws -> UInt32 { try Scalar.integer(value, codingPath) }
    func decode(_ type: UInt64.Type) throws -> UInt64 { try Scalar.integer(value, codingPath) }
    func decode<T: Decodable>(_ type: T.Type) throws -> T {
        try T(from: StrictJSONDecoder(value, codingPath: codingPath))
    }
}
