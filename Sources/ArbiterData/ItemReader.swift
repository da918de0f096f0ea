// Reading one item's fields from parsed JSON, each failure a `DatasetProblem` naming the item and field.
import Foundation

struct ItemFailure: Error {
    let problem: DatasetProblem
}

struct ItemReader {
    let object: [String: Any]
    let id: String
    let index: Int

    /// Reads the item id from `key` (a string), falling back to `#index` for messages (also for an id over the
    /// string cap, which `string("id")` then reports).
    init(object: [String: Any], index: Int, idKey: String) {
        self.object = object
        self.index = index
        id = Self.readableString(object[idKey]) ?? "#\(index)"
    }

    /// A third-party item, named `<image id>#<index>` (image ids repeat: one image can carry several questions);
    /// `#index` when the image id is missing, empty or over the string cap.
    init(object: [String: Any], index: Int, imageIDKey: String) {
        self.object = object
        self.index = index
        id = Self.readableString(object[imageIDKey]).map { "\($0)#\(index)" } ?? "#\(index)"
    }

    /// A non-empty string within the string cap, fit to name an item in messages.
    private static func readableString(_ value: Any?) -> String? {
        guard let s = value as? String, !s.isEmpty, s.utf8.count <= DatasetLimits.maximumStringBytes else { return nil }
        return s
    }

    func failure(_ kind: DatasetProblem.Kind, _ text: String) -> ItemFailure {
        ItemFailure(problem: DatasetProblem(id: id, index: index, kind: kind, problem: text))
    }

    static func typeName(_ value: Any) -> String {
        switch value {
        case is NSNull: return "null"
        case is String: return "a string"
        case is [Any]: return "an array"
        case is [String: Any]: return "an object"
        case let n as NSNumber: return isJSONBoolean(n) ? "a boolean" : "a number"
        default: return "\(type(of: value))"
        }
    }

    /// Throws when `s` (the value of `field`, e.g. "field 'question'") is over `DatasetLimits.maximumStringBytes`.
    func checkSize(_ s: String, _ field: String) throws {
        let bytes = s.utf8.count, limit = DatasetLimits.maximumStringBytes
        guard bytes <= limit else {
            throw failure(.tooLarge, "\(field) is \(bytes) bytes, over the \(limit)-byte limit for a dataset string")
        }
    }

    /// A required, non-null string.
    func string(_ key: String, nonEmpty: Bool = true) throws -> String {
        guard let value = object[key] else { throw failure(.missingField, "field '\(key)' is missing") }
        guard let s = value as? String else {
            throw failure(.wrongType, "field '\(key)' must be a string, found \(Self.typeName(value))")
        }
        try checkSize(s, "field '\(key)'")
        if nonEmpty && s.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty {
            throw failure(.invalidValue, "field '\(key)' is empty")
        }
        return s
    }

    /// A string or null; with `keyRequired` the key itself must be present.
    func optionalString(_ key: String, keyRequired: Bool) throws -> String? {
        guard let value = object[key] else {
            if keyRequired { throw failure(.missingField, "field '\(key)' is missing (write null for no value)") }
            return nil
        }
        if value is NSNull { return nil }
        guard let s = value as? String else {
            throw failure(.wrongType, "field '\(key)' must be a string or null, found \(Self.typeName(value))")
        }
        try checkSize(s, "field '\(key)'")
        guard !s.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty else {
            throw failure(.invalidValue, "field '\(key)' is empty (write null for no value)")
        }
        return s
    }

    /// A required list of strings (possibly empty); empty strings inside are refused.
    func stringList(_ key: String) throws -> [String] {
        guard let value = object[key] else { throw failure(.missingField, "field '\(key)' is missing") }
        guard let list = value as? [Any] else {
            throw failure(.wrongType, "field '\(key)' must be an array of strings, found \(Self.typeName(value))")
        }
        guard list.count <= DatasetLimits.maximumCandidates else {
            throw failure(.tooLarge, "field '\(key)' has \(list.count) entries, over the limit of "
                + "\(DatasetLimits.maximumCandidates)")
        }
        return try list.enumerated().map { i, element in
            guard let s = element as? String else {
                throw failure(.wrongType, "field '\(key)'[\(i)] must be a string, found \(Self.typeName(element))")
            }
            try checkSize(s, "field '\(key)'[\(i)]")
            guard !s.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty else {
                throw failure(.invalidValue, "field '\(key)'[\(i)] is an empty string")
            }
            return s
        }
    }

    /// A required integer.
    func int(_ key: String, in object: [String: Any], context: String) throws -> Int {
        guard let value = object[key] else { throw failure(.missingField, "\(context): field '\(key)' is missing") }
        guard let n = value as? NSNumber, !isJSONBoolean(n), let i = Int(exactly: n.doubleValue) else {
            throw failure(.wrongType, "\(context): field '\(key)' must be an integer, found \(Self.typeName(value))")
        }
        return i
    }

    /// A string-valued enum.
    func enumValue<E: RawRepresentable>(_ key: String, _ type: E.Type, optional: Bool) throws -> E?
        where E.RawValue == String, E: CaseIterable {
        let allowed = E.allCases.map { "'\($0.rawValue)'" }.joined(separator: ", ")
        let raw: String?
        if optional { raw = try optionalString(key, keyRequired: true) } else { raw = try string(key) }
        guard let raw else { return nil }
        guard let value = E(rawValue: raw) else {
            throw failure(.invalidValue,
                          "field '\(key)' is '\(raw)'; expected one of \(allowed)\(optional ? " or null" : "")")
        }
        return value
    }
}

/// Whether an NSNumber came from a JSON boolean (Foundation on Linux hands booleans back as `__NSCFBoolean`
/// with Objective-C type "c"; plain numbers never have that type).
func isJSONBoolean(_ n: NSNumber) -> Bool {
    String(cString: n.objCType) == "c"
}
