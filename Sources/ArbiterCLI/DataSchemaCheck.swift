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
    let lines = found.map { named($0.description, ids: itemIDs(file)) }
    for line in lines { FileHandle.standardError.write(Data("\(file): \(line)\n".utf8)) }
    let count = found.count < limit ? "\(found.count) problem(s)" : "the first \(limit) problems"
    throw CLIError("\(file) does not match dataset.schema.json (\(count) listed above; the first: \(lines[0]))")
}

/// The `id` of each item of dataset.json (nil where absent or not a string), to name items in messages.
private func itemIDs(_ file: String) -> [String?] {
    guard let data = FileManager.default.contents(atPath: file),
          let top = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
          let items = top["items"] as? [Any] else { return [] }
    return items.map { ($0 as? [String: Any])?["id"] as? String }
}

/// `items[3].kind: …` → `items[3] (item 'item-00003').kind: …`, so that a problem names the item as the loader's
/// messages do.
private func named(_ line: String, ids: [String?]) -> String {
    guard line.hasPrefix("items["), let close = line.firstIndex(of: "]"),
          let index = Int(line[line.index(line.startIndex, offsetBy: 6)..<close]),
          ids.indices.contains(index) else { return line }
    let item = ids[index].map { "item '\($0)' #\(index)" } ?? "item #\(index)"
    return "items[\(index)] (\(item))" + line[line.index(after: close)...]
}
