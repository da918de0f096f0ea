// Decoding JSON files (config.json, preprocessor_config.json, datasets) into Codable values with errors
// that name the file and the key path.
import ArbiterJSON
import Foundation

public enum JSONFile {
    /// Largest JSON file Arbiter reads (configs are kilobytes; tokenizer.json of large vocabularies ~ 10–30 MB).
    public static let maximumBytes = 256 << 20

    /// Reads a file's bytes, refusing missing files, anything but a regular file, and files over `maximumBytes`.
    public static func data(at url: URL) throws -> Data {
        let size = try FileCheck.regularFile(url)
        if size > maximumBytes {
            throw FormatError(.tooLarge, file: url,
                              "\(size) bytes is over the \(maximumBytes)-byte limit for JSON files")
        }
        do { return try Data(contentsOf: url) } catch {
            throw FormatError(.unreadable, file: url, "cannot read: \(error.localizedDescription)")
        }
    }

    /// Decodes `T` from the file at `url`.
    public static func decode<T: Decodable>(_ type: T.Type, from url: URL) throws -> T {
        try decode(type, from: data(at: url), file: url.path)
    }

    /// Decodes `T` from `data` with StrictJSONDecoder (integer fields take integer literals only, duplicate
    /// keys are refused); errors name `file` and the key path.
    public static func decode<T: Decodable>(_ type: T.Type, from data: Data, file: String) throws -> T {
        let value: JSONValue
        do { value = try StrictJSON.parse(data) } catch let error as JSONDuplicateKeyError {
            throw FormatError(.malformed, file: file, "\(error)")
        } catch {
            throw FormatError(.malformed, file: file, "not valid JSON: \(error)")
        }
        do {
            return try T(from: StrictJSONDecoder(value))
        } catch let error as DecodingError {
            throw FormatError(.malformed, file: file, describe(error))
        } catch let error as FormatError {
            throw error
        } catch {
            throw FormatError(.malformed, file: file, "\(error)")
        }
    }

    /// Parses the file as a JSON object (dictionary).
    public static func object(at url: URL) throws -> [String: Any] {
        let data = try data(at: url)
        let value: Any
        do { value = try JSONSerialization.jsonObject(with: data, options: [.fragmentsAllowed]) } catch {
            throw FormatError(.malformed, file: url, "not valid JSON (\(error.localizedDescription))")
        }
        guard let object = value as? [String: Any] else {
            throw FormatError(.malformed, file: url, "top-level JSON value is not an object")
        }
        return object
    }

    /// A readable account of a DecodingError: the field's key path and what went wrong.
    public static func describe(_ error: DecodingError) -> String {
        func field(_ codingPath: [CodingKey]) -> String {
            let p = codingPath.map { $0.intValue.map { "[\($0)]" } ?? ".\($0.stringValue)" }.joined()
            return p.isEmpty ? "the top level" : "field " + String(p.drop { $0 == "." })
        }
        switch error {
        case .typeMismatch(let type, let context):
            // StrictJSONDecoder says what the field must be and what it holds; JSONDecoder names the type only.
            if context.debugDescription.hasPrefix("must ") {
                return "\(field(context.codingPath)) \(context.debugDescription)"
            }
            return "\(field(context.codingPath)): expected \(type) (\(context.debugDescription))"
        case .valueNotFound(let type, let context):
            return "\(field(context.codingPath)): missing \(type) value (\(context.debugDescription))"
        case .keyNotFound(let key, let context):
            return "\(field(context.codingPath + [key])) is required but missing"
        case .dataCorrupted(let context):
            let underlying = (context.underlyingError as NSError?)?.localizedDescription ?? ""
            return "\(field(context.codingPath)): \(context.debugDescription) \(underlying)"
                .trimmingCharacters(in: .whitespaces)
        @unknown default:
            return "\(error)"
        }
    }
}
