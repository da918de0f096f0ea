// `arbiter data check --data DIR`: dataset.json against the dataset JSON Schema, before the item rules.
import ArbiterData
import ArbiterFormats
import Foundation

/// Prints where `directory/dataset.json` breaks the schema (file, JSON path, problem — one line each, on standard
/// error) and refuses the file; prints one line when it matches.
func checkDatasetSchema(_ directory: String) throws {
    let limit = 50
    let file = URL(fileURLWithPath: directory).appendingPathComponent(ConflictDataset.fileName).path
    let found: [SchemaViolation]
    do {
        found = try ConflictDataset.schemaViolations(directory: URL(fileURLWithPath: directory), limit: limit)
    } catch { throw CLIError("\(error)") }
    guard !found.isEmpty else {
        print("\(file): matches dataset.schema.json")
        return
    }
    for violation in found { FileHandle.standardError.write(Data("\(file): \(violation)\n".utf8)) }
    let count = found.count < limit ? "\(found.count) problem(s)" : "the first \(limit) problems"
    throw CLIError("\(file) does not match dataset.schema.json (\(count) listed above; the first: \(found[0]))")
}
