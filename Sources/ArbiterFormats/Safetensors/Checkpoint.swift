// Checkpoint: the weights of a Hugging Face model folder, from `model.safetensors` or from the shards listed
// in `model.safetensors.index.json` (checked so that every tensor comes from exactly the shard the index names).
import Foundation
import ArbiterJSON
import ArbiterTensor

/// All tensors of a Hugging Face checkpoint folder, as zero-copy views into memory-mapped safetensors files.
public struct Checkpoint: Sendable {
    /// The single-file checkpoint name, looked for first (as transformers does).
    public static let singleFileName = "model.safetensors"
    /// The sharded checkpoint index, looked for when there is no single file.
    public static let indexFileName = "model.safetensors.index.json"

    public let directory: URL
    /// Tensors by name, across all files.
    public let tensors: [String: StoredTensor]
    /// The safetensors files read, in name order.
    public let files: [URL]
    /// Tensors left out because of unsupported dtypes (only with `skipUnsupported`), sorted.
    public let skipped: [String]

    /// Total bytes of all tensors in their stored dtypes.
    public var totalBytes: Int { tensors.values.reduce(0) { $0 + $1.count * $1.dtype.byteSize } }

    /// Tensor names, sorted.
    public var names: [String] { tensors.keys.sorted() }

    /// Loads the checkpoint in `directory`. Throws `FormatError`: `.missing` when neither file exists or a
    /// shard or indexed tensor is absent, `.unexpected` when a tensor is in two shards or in a shard the
    /// index does not map it to, and the errors of `SafetensorsFile` for each file. With `requireFinite`
    /// (the default) a NaN or infinity in any tensor is refused, naming the file and tensor
    /// (`SafetensorsFile.requireFinite`; the scan costs about as much as reading the file, see `FiniteScan`).
    public init(directory: URL, skipUnsupported: Bool = false, requireFinite: Bool = true) throws {
        self.directory = directory
        let fileManager = FileManager.default
        let single = directory.appendingPathComponent(Self.singleFileName)
        let index = directory.appendingPathComponent(Self.indexFileName)

        if fileManager.fileExists(atPath: single.path) {
            let file = try SafetensorsFile(url: single, skipUnsupported: skipUnsupported)
            if requireFinite { try file.requireFinite() }
            tensors = file.tensors
            files = [single]
            skipped = file.skipped
            return
        }
        guard fileManager.fileExists(atPath: index.path) else {
            var isDirectory: ObjCBool = false
            let exists = fileManager.fileExists(atPath: directory.path, isDirectory: &isDirectory)
            let problem = !exists ? "folder does not exist"
                : !isDirectory.boolValue ? "is not a folder" : "no checkpoint"
            throw FormatError(.missing, file: directory,
                              "\(problem): looked for \(Self.singleFileName) and \(Self.indexFileName)")
        }

        let weightMap = try Self.readWeightMap(index)
        var shards: [(name: String, file: SafetensorsFile)] = []
        for shardName in Set(weightMap.values).sorted() {
            let shard = directory.appendingPathComponent(shardName)
            guard fileManager.fileExists(atPath: shard.path) else {
                let count = weightMap.values.filter { $0 == shardName }.count
                throw FormatError(.missing, file: index,
                                  "shard file \(shardName) (\(count) tensors) is missing from \(directory.path)")
            }
            shards.append((shardName, try SafetensorsFile(url: shard, skipUnsupported: skipUnsupported)))
        }
        // Every tensor in one shard only, the one the index names; every indexed tensor present.
        var location: [String: String] = [:]  // tensor name → shard holding it
        for shard in shards {
            for name in shard.file.names + shard.file.skipped {
                if let other = location[name] {
                    throw FormatError(.unexpected, file: shard.file.url,
                                      "tensor \"\(name)\" is in two shards: \(other) and \(shard.name)")
                }
                location[name] = shard.name
            }
        }
        for (name, shardName) in location.sorted(by: { $0.key < $1.key }) where weightMap[name] != shardName {
            let problem = weightMap[name].map { "\(Self.indexFileName) maps it to \($0)" }
                ?? "it is not listed in \(Self.indexFileName)"
            throw FormatError(.unexpected, file: directory.appendingPathComponent(shardName),
                              "tensor \"\(name)\" is in this shard but \(problem)")
        }
        for (name, shardName) in weightMap.sorted(by: { $0.key < $1.key }) where location[name] == nil {
            throw FormatError(.missing, file: directory.appendingPathComponent(shardName),
                              "tensor \"\(name)\" listed in \(Self.indexFileName) is not in this shard")
        }
        if requireFinite { for shard in shards { try shard.file.requireFinite() } }
        var tensors: [String: StoredTensor] = [:]
        for shard in shards { tensors.merge(shard.file.tensors) { first, _ in first } }
        self.tensors = tensors
        self.files = shards.map(\.file.url)
        self.skipped = shards.flatMap(\.file.skipped).sorted()
    }

    /// The index's `weight_map`: tensor name → shard file name (a plain file name inside the folder).
    static func readWeightMap(_ index: URL) throws -> [String: String] {
        let data = try JSONFile.data(at: index)
        let root: JSONValue
        do { root = try StrictJSON.parse(data) } catch let error as JSONDuplicateKeyError {
            throw FormatError(.unexpected, file: index, "\(error)")
        } catch {
            throw FormatError(.malformed, file: index, "not valid JSON: \(error)")
        }
        guard let object = root.members else {
            throw FormatError(.malformed, file: index, "top-level JSON value is \(root.kindName), expected an object")
        }
        guard let entries = object["weight_map"]?.members else {
            throw FormatError(.malformed, file: index,
                              "\"weight_map\" is \(object["weight_map"]?.kindName ?? "missing"), expected an object of "
                              + "tensor name → shard file")
        }
        var weightMap: [String: String] = [:]
        for (name, value) in entries {
            guard case .string(let shard) = value else {
                throw FormatError(.malformed, file: index,
                                  "weight_map[\"\(name)\"] is \(value.kindName), expected a shard file name")
            }
            guard !shard.isEmpty, !shard.contains("/"), shard != ".", shard != ".." else {
                throw FormatError(.malformed, file: index,
                                  "weight_map[\"\(name)\"] = \"\(shard)\" is not a file name inside the "
                                  + "checkpoint folder")
            }
            weightMap[name] = shard
        }
        guard !weightMap.isEmpty else {
            throw FormatError(.missing, file: index, "\"weight_map\" is empty: the index lists no tensors")
        }
        return weightMap
    }
}
