// The JSON Schema of dataset.json (Schemas/dataset.schema.json in this target, also at Schemas/ in the
// repository for editors). `arbiter data check` applies it before the item rules of `ConflictDataset.load`.
import ArbiterFormats
import Foundation

extension ConflictDataset {
    /// The schema file shipped with the library.
    public static var schemaURL: URL? {
        Bundle.module.url(forResource: "dataset.schema", withExtension: "json", subdirectory: "Schemas")
    }

    /// The dataset schema.
    public static func schema() throws -> JSONSchema {
        try JSONSchema(resource: schemaURL, name: "dataset.schema.json", owner: "ArbiterData")
    }

    /// Every place where `directory/dataset.json` breaks the schema (at most `limit`); throws when the file
    /// cannot be read or is not JSON.
    public static func schemaViolations(directory: URL, limit: Int = 100) throws -> [SchemaViolation] {
        let url = directory.appendingPathComponent(fileName)
        return try schema().violations(in: try JSONFile.data(at: url), file: url.path, limit: limit)
    }
}
