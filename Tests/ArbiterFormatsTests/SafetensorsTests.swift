// Tests of SafetensorsFile, SafetensorsWriter, Checkpoint, MappedFile and WeightStore on well-formed input:
// the Python reference fixture, round trips, sharded checkpoints and strict weight loading.
import Foundation
#if canImport(Glibc)
import Glibc
#endif
import Testing
import ArbiterTensor
@testable import ArbiterFormats

/// A fresh folder under the system temporary directory, removed when the value is released.
final class SafetensorsTestFolder {
    let url: URL
    init() throws {
        url = FileManager.default.temporaryDirectory
            .appendingPathComponent("arbiter-safetensors-\(UUID().uuidString)", isDirectory: true)
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    }
    deinit { try? FileManager.default.removeItem(at: url) }

    func file(_ name: String) -> URL { url.appendingPathComponent(name) }

    func write(_ bytes: [UInt8], to name: String) throws -> URL {
        let target = file(name)
        try Data(bytes).write(to: target)
        return target
    }
}

/// The content of Fixtures/reference.safetensors (written by make_safetensors_fixture.py; keep in sync).
enum ReferenceFixture {
    static let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("Fixtures/reference.safetensors")
    static let source: [Float] = [0.0, 1.0, -2.5, 3.14159, 1e-5, 65504.0, 1.00048828125, 1.00390625, -0.1, 1e30,
                                  70000.0, -0.0]
    static let metadata = ["format": "pt"]

    /// The fixture's tensors built from `source` by the Swift encoders.
    static var tensors: [(name: String, dtype: DType, shape: [Int], bytes: [UInt8])] {
        [
            ("model.a.weight", .float32, [3, 4], SafetensorsWriter.encode(source, as: .float32)),
            ("model.b.half", .float16, [12], SafetensorsWriter.encode(source, as: .float16)),
            ("model.c.bf16", .bfloat16, [2, 6], SafetensorsWriter.encode(source, as: .bfloat16)),
            ("model.d.empty", .float32, [0, 4], []),
            ("model.e.scalar", .float32, [], SafetensorsWriter.encode([7], as: .float32)),
        ]
    }
}

/// The bytes of a stored tensor.
func storedBytes(_ tensor: StoredTensor) -> [UInt8] {
    Array(UnsafeRawBufferPointer(start: tensor.bytes, count: tensor.count * tensor.dtype.byteSize))
}

/// Bit patterns of floats, so that -0.0, NaN and infinities compare exactly.
func bitPatterns(_ values: [Float]) -> [UInt32] { values.map(\.bitPattern) }

@Suite("Safetensors reading and writing")
struct SafetensorsTests {
    @Test("reads the file written by Python safetensors")
    func readsPythonReference() throws {
        let file = try SafetensorsFile(url: ReferenceFixture.url)
        #expect(file.names == ["model.a.weight", "model.b.half", "model.c.bf16", "model.d.empty", "model.e.scalar"])
        #expect(file.metadata == ReferenceFixture.metadata)
        #expect(file.skipped.isEmpty)
        let source = ReferenceFixture.source
        let a = try #require(file.tensors["model.a.weight"])
        #expect(a.dtype == .float32 && a.shape == [3, 4])
        #expect(bitPatterns(a.toTensor().scalars) == bitPatterns(source))
        #expect(a.float32Pointer != nil, "the reference writer keeps F32 data 4-byte aligned")
        let half = try #require(file.tensors["model.b.half"])
        #expect(half.dtype == .float16 && half.shape == [12])
        #expect(bitPatterns(half.toTensor().scalars) == bitPatterns(source.map { Float(Float16($0)) }))
        #expect(half.toTensor().scalars[10] == .infinity, "70000 overflows float16")
        let bf16 = try #require(file.tensors["model.c.bf16"])
        #expect(bf16.dtype == .bfloat16 && bf16.shape == [2, 6])
        #expect(bitPatterns(bf16.toTensor().scalars) == bitPatterns(source.map { bfloat16ToFloat(floatToBFloat16($0)) }))
        #expect(bf16.toTensor().scalars[7] == 1.0, "1 + 2^-8 is a tie that rounds to even")
        let empty = try #require(file.tensors["model.d.empty"])
        #expect(empty.shape == [0, 4] && empty.count == 0)
        let scalar = try #require(file.tensors["model.e.scalar"])
        #expect(scalar.shape == [] && scalar.toTensor().scalars == [7])
        #expect(file.totalBytes == 48 + 24 + 24 + 0 + 4)
    }

    @Test("writes the same bytes as Python safetensors for the same content")
    func writesReferenceBytes() throws {
        let folder = try SafetensorsTestFolder()
        let expected = try [UInt8](Data(contentsOf: ReferenceFixture.url))
        // From Swift-encoded values (checks the F16/BF16 rounding against torch), in a shuffled order.
        let encoded = folder.file("encoded.safetensors")
        try SafetensorsWriter.write(ReferenceFixture.tensors.reversed(), metadata: ReferenceFixture.metadata, to: encoded)
        #expect(try [UInt8](Data(contentsOf: encoded)) == expected)
        // From the bytes read back.
        let read = try SafetensorsFile(url: ReferenceFixture.url)
        let copied = folder.file("copied.safetensors")
        try SafetensorsWriter.write(read.names.compactMap { name in
            read.tensors[name].map { (name: name, dtype: $0.dtype, shape: $0.shape, bytes: storedBytes($0)) }
        }, metadata: read.metadata, to: copied)
        #expect(try [UInt8](Data(contentsOf: copied)) == expected)
    }

    @Test("Float32 tensors round-trip through each stored dtype", arguments: DType.allCases)
    func floatRoundTrip(dtype: DType) throws {
        let folder = try SafetensorsTestFolder()
        let values: [Float] = [0, -0.0, 1, -1, 0.1, 3.14159, 1e-3, 1e-6, 6e-8, Float.leastNormalMagnitude / 4, 65504, 65520, 1e5, 3e38,
                               .infinity, -.infinity, .leastNonzeroMagnitude, .greatestFiniteMagnitude, -123.456, 0.5]
        let tensors = [
            "w": Tensor(shape: [4, 5], scalars: values),
            "b": Tensor(shape: [5], scalars: Array(values.prefix(5))),
            "e": Tensor(shape: [0], scalars: []),
        ]
        let url = folder.file("roundtrip.safetensors")
        try SafetensorsWriter.write(floats: tensors, dtype: dtype, metadata: ["dtype": dtype.rawValue], to: url)
        let file = try SafetensorsFile(url: url)
        #expect(file.names == ["b", "e", "w"])
        #expect(file.metadata == ["dtype": dtype.rawValue])
        for (name, tensor) in tensors {
            let stored = try #require(file.tensors[name])
            #expect(stored.dtype == dtype && stored.shape == tensor.shape && stored.name == name)
            let expected: [Float] = tensor.scalars.map { value in
                switch dtype {
                case .float32: return value
                case .float16: return Float(Float16(value))
                case .bfloat16: return bfloat16ToFloat(floatToBFloat16(value))
                }
            }
            #expect(bitPatterns(stored.toTensor().scalars) == bitPatterns(expected), "\(name) as \(dtype)")
        }
        // NaN survives as NaN in every dtype.
        let nanURL = folder.file("nan.safetensors")
        try SafetensorsWriter.write(floats: ["n": Tensor(shape: [1], scalars: [.nan])], dtype: dtype, to: nanURL)
        #expect(try SafetensorsFile(url: nanURL).tensors["n"]?.toTensor().scalars[0].isNaN == true)
    }

    @Test("tensors stay valid after the file value is gone")
    func tensorsOutliveFile() throws {
        let folder = try SafetensorsTestFolder()
        let url = folder.file("outlive.safetensors")
        try SafetensorsWriter.write(floats: ["x": Tensor(shape: [3], scalars: [1, 2, 3])], dtype: .float32, to: url)
        var tensor: StoredTensor?
        do { tensor = try SafetensorsFile(url: url).tensors["x"] }
        try FileManager.default.removeItem(at: url)
        #expect(tensor?.toTensor().scalars == [1, 2, 3])
    }

    @Test("names and metadata with quotes, control characters and non-ASCII round-trip")
    func escapingRoundTrip() throws {
        let folder = try SafetensorsTestFolder()
        let url = folder.file("escapes.safetensors")
        let names = ["quote\"d", "back\\slash", "new\nline", "tab\tand\u{01}", "é/ü😀", "a.b.c"]
        let metadata = ["k\"ey": "va\\lue\n", "emoji": "😀\u{7F}\u{1F}", "empty": ""]
        try SafetensorsWriter.write(names.map { (name: $0, dtype: .float32, shape: [1], bytes: [0, 0, 128, 63]) },
                                    metadata: metadata, to: url)
        let file = try SafetensorsFile(url: url)
        #expect(Set(file.names) == Set(names))
        #expect(file.metadata == metadata)
        #expect(file.tensors.values.allSatisfy { $0.toTensor().scalars == [1] })
        // Header length is a multiple of 8 (space padding).
        let bytes = try [UInt8](Data(contentsOf: url))
        let length = bytes[0..<8].reversed().reduce(0) { $0 << 8 | Int($1) }
        #expect(length % 8 == 0)
    }

    @Test("writing replaces the file atomically and leaves no temporary files")
    func atomicWrite() throws {
        let folder = try SafetensorsTestFolder()
        let url = folder.file("model.safetensors")
        try SafetensorsWriter.write(floats: ["a": Tensor(shape: [2], scalars: [1, 2])], dtype: .float32, to: url)
        try SafetensorsWriter.write(floats: ["b": Tensor(shape: [1], scalars: [5])], dtype: .bfloat16, to: url)
        #expect(try SafetensorsFile(url: url).names == ["b"])
        #expect(try FileManager.default.contentsOfDirectory(atPath: folder.url.path) == ["model.safetensors"])
    }

    @Test("the writer refuses invalid input and leaves nothing behind")
    func writerRefusesInvalidInput() throws {
        let folder = try SafetensorsTestFolder()
        let url = folder.file("bad.safetensors")
        let cases: [([(name: String, dtype: DType, shape: [Int], bytes: [UInt8])], FormatError.Kind, String)] = [
            ([("a", .float32, [2], [0, 0, 0, 0])], .inconsistent, "needs 2 elements"),
            ([("a", .float16, [1], [0, 0]), ("a", .float32, [1], [0, 0, 0, 0])], .unexpected, "duplicate tensor name"),
            ([("", .float32, [0], [])], .malformed, "cannot write a tensor named"),
            ([("__metadata__", .float32, [0], [])], .malformed, "cannot write a tensor named"),
            ([("n", .float32, [-1], [])], .malformed, "negative dimension"),
            ([("o", .float32, [Int.max, 2], [])], .malformed, "overflows"),
        ]
        for (tensors, kind, phrase) in cases {
            let error = #expect(throws: FormatError.self) { try SafetensorsWriter.write(tensors, to: url) }
            #expect(error?.kind == kind)
            #expect(error?.description.contains(phrase) == true, "\(error?.description ?? "no error")")
        }
        #expect(try FileManager.default.contentsOfDirectory(atPath: folder.url.path).isEmpty)
        let missingFolder = folder.file("no/such/folder/x.safetensors")
        #expect(throws: FormatError.self) {
            try SafetensorsWriter.write(floats: ["a": Tensor(shape: [1], scalars: [1])], dtype: .float32, to: missingFolder)
        }
    }

    @Test("unsupported dtypes fail by default and are listed when skipped")
    func unsupportedDTypes() throws {
        let folder = try SafetensorsTestFolder()
        let header = #"{"pos":{"dtype":"I64","shape":[2],"data_offsets":[0,16]},"w":{"dtype":"F32","shape":[1],"data_offsets":[16,20]}}"#
        let url = try folder.write(SafetensorsBytes.file(header: header, data: [UInt8](repeating: 0, count: 20)), to: "mixed.safetensors")
        let error = #expect(throws: FormatError.self) { try SafetensorsFile(url: url) }
        #expect(error?.kind == .unsupported)
        #expect(error?.description.contains("tensor \"pos\" has dtype I64") == true)
        let file = try SafetensorsFile(url: url, skipUnsupported: true)
        #expect(file.names == ["w"])
        #expect(file.skipped == ["pos"])
    }

    @Test("zero-length tensors may sit at the start, between two tensors or at the end (not inside one)")
    func zeroLengthTensors() throws {
        let folder = try SafetensorsTestFolder()
        let B = SafetensorsBytes.self
        let header = "{" + [B.entry("first", "F32", "[0]", "[0,0]"), B.entry("a", "F32", "[1]", "[0,4]"),
                            B.entry("between", "BF16", "[3,0]", "[4,4]"), B.entry("b", "F32", "[1]", "[4,8]"),
                            B.entry("last", "F16", "[0,2]", "[8,8]")].joined(separator: ",") + "}"
        let url = try folder.write(B.file(header: header, data: [UInt8](repeating: 0, count: 8)),
                                   to: "zero.safetensors")
        let file = try SafetensorsFile(url: url)
        #expect(file.names == ["a", "b", "between", "first", "last"])
        #expect(file.tensors["between"]?.count == 0 && file.tensors["last"]?.count == 0)
    }

    @Test("files from the reference writer cover their data buffer exactly: every bundled checkpoint loads")
    func bundledCheckpointsLoad() throws {
        let models = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("GoldenData/models")
        let names = try FileManager.default.contentsOfDirectory(atPath: models.path).sorted()
        #expect(names.count >= 8, "found \(names)")
        for name in names {
            let checkpoint = try Checkpoint(directory: models.appendingPathComponent(name))
            #expect(!checkpoint.tensors.isEmpty, "\(name)")
        }
    }

    @Test("MappedFile and Checkpoint refuse a named pipe before opening it (no blocking), a device and a folder")
    func nonRegularFiles() throws {
        let folder = try SafetensorsTestFolder()
        let fifo = folder.file("model.safetensors")
        #expect(mkfifo(fifo.path, 0o600) == 0, "mkfifo: \(String(cString: strerror(errno)))")
        // Opening a FIFO for reading with no writer blocks: the test would hang here if the check came late.
        let cases: [(URL, String)] = [(fifo, "a named pipe (FIFO)"), (folder.url, "a folder"),
                                      (URL(fileURLWithPath: "/dev/null"), "a character device")]
        for (url, what) in cases {
            let error = expectRefusedWithoutBlocking(url) { _ = try MappedFile(url: url) }
            #expect(error?.kind == .unreadable)
            #expect(error?.description.contains("not a regular file: it is \(what)") == true,
                    "\(error?.description ?? "")")
        }
        // A checkpoint folder whose model.safetensors is a pipe.
        let checkpoint = expectRefusedWithoutBlocking(fifo) { [url = folder.url] in _ = try Checkpoint(directory: url) }
        #expect(checkpoint?.description.contains("named pipe") == true)
        // A symbolic link to a regular file is followed.
        let target = try folder.write(SafetensorsBytes.file(header: "{}"), to: "target.safetensors")
        try FileManager.default.createSymbolicLink(at: folder.file("link.safetensors"), withDestinationURL: target)
        #expect(try SafetensorsFile(url: folder.file("link.safetensors")).names.isEmpty)
    }

    @Test("a NaN or an infinity is found in every dtype, at any position, naming the tensor, the file and the element",
          arguments: DType.allCases)
    func nonFiniteFound(dtype: DType) throws {
        let folder = try SafetensorsTestFolder()
        // Sizes around the vector width (8/16 lanes) and the 4096-element block, positions at both ends.
        let placements: [(Int, Int, Float)] = [(1, 0, .nan), (15, 14, .infinity), (17, 16, -.infinity),
                                               (4096, 4095, .nan), (4097, 4096, .infinity), (10_000, 5000, .nan),
                                               (10_000, 0, -.infinity)]
        for (count, position, value) in placements {
            var values = (0..<count).map { Float($0 % 97) * 0.5 - 20 }
            values[position] = value
            if position + 1 < count { values[count - 1] = .nan }  // a later non-finite value must not be reported
            let url = folder.file("w\(count)-\(position).safetensors")
            try SafetensorsWriter.write(floats: ["fine": Tensor(shape: [3], scalars: [1, 2, 65504]),
                                                 "w": Tensor(shape: [count], scalars: values)], dtype: dtype, to: url)
            let file = try SafetensorsFile(url: url)
            #expect(FiniteScan.firstNonFinite(try #require(file.tensors["w"])) == position,
                    "\(dtype) \(count) \(position)")
            #expect(FiniteScan.firstNonFinite(try #require(file.tensors["fine"])) == nil)
            let error = #expect(throws: FormatError.self) { try file.requireFinite() }
            let text = error?.description ?? ""
            let kind = value.isNaN ? "NaN" : value < 0 ? "-infinity" : "+infinity"
            #expect(text.contains(url.path), "\(text)")
            #expect(text.contains("tensor \"w\" holds \(kind) at element \(position) "), "\(text)")
        }
        // Values next to the limits are finite: the largest finite value, the smallest subnormal, -0.
        let edge = folder.file("edge.safetensors")
        let largest: Float = dtype == .float16 ? 65504 : dtype == .bfloat16 ? 3.3895314e38 : .greatestFiniteMagnitude
        let edges = Array(repeating: largest, count: 17) + [-largest, .leastNonzeroMagnitude, -0.0]
        try SafetensorsWriter.write(floats: ["e": Tensor(shape: [20], scalars: edges)], dtype: dtype, to: edge)
        try SafetensorsFile(url: edge).requireFinite()
    }

    @Test("the multi-dimensional index of the first non-finite element is named")
    func nonFiniteIndex() throws {
        let folder = try SafetensorsTestFolder()
        let url = folder.file("model.safetensors")
        var values = [Float](repeating: 0.5, count: 24)
        values[17] = .nan
        let name = "model.layers.1.mlp.up_proj.weight"
        try SafetensorsWriter.write(floats: [name: Tensor(shape: [2, 3, 4], scalars: values)], dtype: .bfloat16,
                                    to: url)
        let error = #expect(throws: FormatError.self) { try Checkpoint(directory: folder.url) }
        #expect(error?.description.contains(url.path) == true)
        #expect(error?.description.contains(
            "tensor \"\(name)\" holds NaN at element 17 (index [1, 1, 1] of shape [2, 3, 4])") == true,
                "\(error?.description ?? "no error")")
        #expect(try Checkpoint(directory: folder.url, requireFinite: false).names == [name])
    }

    @Test("MappedFile maps empty files and refuses missing files and folders")
    func mappedFile() throws {
        let folder = try SafetensorsTestFolder()
        let empty = try folder.write([], to: "empty.bin")
        let map = try MappedFile(url: empty)
        #expect(map.count == 0 && map.buffer.isEmpty)
        let small = try MappedFile(url: folder.write([1, 2, 3], to: "small.bin"))
        #expect(Array(small.buffer) == [1, 2, 3])
        for url in [folder.file("absent.bin"), folder.url] {
            let error = #expect(throws: FormatError.self) { try MappedFile(url: url) }
            #expect(error?.kind == .unreadable)
            #expect(error?.description.contains(url.lastPathComponent) == true)
        }
    }
}

@Suite("Checkpoint folders")
struct CheckpointTests {
    /// Writes two shards and an index for tensors a, b (shard 1) and c (shard 2); returns the folder.
    func sharded(_ folder: SafetensorsTestFolder, index weightMap: [String: String]? = nil) throws {
        try SafetensorsWriter.write(floats: ["a": Tensor(shape: [2, 2], scalars: [1, 2, 3, 4]),
                                             "b": Tensor(shape: [3], scalars: [5, 6, 7])],
                                    dtype: .float32, to: folder.file("model-00001-of-00002.safetensors"))
        try SafetensorsWriter.write(floats: ["c": Tensor(shape: [2], scalars: [8, 9])],
                                    dtype: .bfloat16, to: folder.file("model-00002-of-00002.safetensors"))
        let map = weightMap ?? ["a": "model-00001-of-00002.safetensors", "b": "model-00001-of-00002.safetensors",
                                "c": "model-00002-of-00002.safetensors"]
        let index: [String: Any] = ["metadata": ["total_size": 32], "weight_map": map]
        try JSONSerialization.data(withJSONObject: index, options: [.sortedKeys])
            .write(to: folder.file(Checkpoint.indexFileName))
    }

    @Test("a single model.safetensors")
    func singleFile() throws {
        let folder = try SafetensorsTestFolder()
        try SafetensorsWriter.write(floats: ["x": Tensor(shape: [2], scalars: [1, 2])], dtype: .float16,
                                    to: folder.file("model.safetensors"))
        let checkpoint = try Checkpoint(directory: folder.url)
        #expect(checkpoint.names == ["x"])
        #expect(checkpoint.files.map(\.lastPathComponent) == ["model.safetensors"])
        #expect(checkpoint.totalBytes == 4)
    }

    @Test("shards listed in model.safetensors.index.json")
    func shardedCheckpoint() throws {
        let folder = try SafetensorsTestFolder()
        try sharded(folder)
        let checkpoint = try Checkpoint(directory: folder.url)
        #expect(checkpoint.names == ["a", "b", "c"])
        #expect(checkpoint.files.map(\.lastPathComponent) == ["model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"])
        #expect(checkpoint.totalBytes == 16 + 12 + 4)
        #expect(checkpoint.tensors["a"]?.toTensor().scalars == [1, 2, 3, 4])
        #expect(checkpoint.tensors["c"]?.dtype == .bfloat16)
        #expect(checkpoint.tensors["c"]?.toTensor().scalars == [8, 9])
    }

    func expectError(_ folder: SafetensorsTestFolder, _ kind: FormatError.Kind, _ phrases: [String]) {
        let error = #expect(throws: FormatError.self) { try Checkpoint(directory: folder.url) }
        #expect(error?.kind == kind)
        for phrase in phrases {
            #expect(error?.description.contains(phrase) == true, "\(error?.description ?? "no error") lacks \(phrase)")
        }
    }

    @Test("a folder without checkpoint files says which files it looked for")
    func emptyFolder() throws {
        let folder = try SafetensorsTestFolder()
        expectError(folder, .missing, ["model.safetensors and model.safetensors.index.json", folder.url.lastPathComponent])
        let error = #expect(throws: FormatError.self) { try Checkpoint(directory: folder.file("absent")) }
        #expect(error?.kind == .missing)
        #expect(error?.description.contains("folder does not exist") == true)
    }

    @Test("a missing shard file is named")
    func missingShard() throws {
        let folder = try SafetensorsTestFolder()
        try sharded(folder)
        try FileManager.default.removeItem(at: folder.file("model-00002-of-00002.safetensors"))
        expectError(folder, .missing, ["shard file model-00002-of-00002.safetensors", "is missing"])
    }

    @Test("a tensor listed in the index but absent from its shard")
    func indexedTensorAbsent() throws {
        let folder = try SafetensorsTestFolder()
        try sharded(folder, index: ["a": "model-00001-of-00002.safetensors", "b": "model-00001-of-00002.safetensors",
                                    "c": "model-00002-of-00002.safetensors", "d": "model-00002-of-00002.safetensors"])
        expectError(folder, .missing, ["tensor \"d\" listed in model.safetensors.index.json is not in this shard",
                                       "model-00002-of-00002.safetensors"])
    }

    @Test("a shard holding a tensor the index maps elsewhere")
    func tensorInWrongShard() throws {
        let folder = try SafetensorsTestFolder()
        try sharded(folder, index: ["a": "model-00001-of-00002.safetensors", "b": "model-00002-of-00002.safetensors",
                                    "c": "model-00002-of-00002.safetensors"])
        expectError(folder, .unexpected, ["tensor \"b\" is in this shard but model.safetensors.index.json maps it to model-00002-of-00002.safetensors"])
    }

    @Test("a shard holding a tensor the index does not list")
    func tensorNotIndexed() throws {
        let folder = try SafetensorsTestFolder()
        try sharded(folder, index: ["a": "model-00001-of-00002.safetensors", "c": "model-00002-of-00002.safetensors"])
        expectError(folder, .unexpected, ["tensor \"b\"", "is not listed in model.safetensors.index.json"])
    }

    @Test("a tensor in two shards")
    func tensorInTwoShards() throws {
        let folder = try SafetensorsTestFolder()
        try sharded(folder)
        try SafetensorsWriter.write(floats: ["c": Tensor(shape: [2], scalars: [8, 9]), "b": Tensor(shape: [1], scalars: [0])],
                                    dtype: .float32, to: folder.file("model-00002-of-00002.safetensors"))
        expectError(folder, .unexpected, ["tensor \"b\" is in two shards"])
    }

    @Test("malformed indexes", arguments: [
        (#"[1]"#, "expected an object"),
        (#"{"metadata":{}}"#, "\"weight_map\" is missing"),
        (#"{"weight_map":{}}"#, "\"weight_map\" is empty"),
        (#"{"weight_map":{"a":3}}"#, "expected a shard file name"),
        (#"{"weight_map":{"a":"../model.safetensors"}}"#, "not a file name inside the checkpoint folder"),
        (#"{"weight_map":{"a":"x.safetensors","a":"y.safetensors"}}"#, "duplicate key \"a\""),
        (#"{"weight_map":{"a":"x.safetensors"}"#, "not valid JSON"),
    ])
    func malformedIndex(text: String, phrase: String) throws {
        let folder = try SafetensorsTestFolder()
        try Data(text.utf8).write(to: folder.file(Checkpoint.indexFileName))
        let error = #expect(throws: FormatError.self) { try Checkpoint(directory: folder.url) }
        #expect(error?.description.contains(Checkpoint.indexFileName) == true)
        #expect(error?.description.contains(phrase) == true, "\(error?.description ?? "no error")")
    }

    @Test("a NaN in a shard is refused naming that shard and the tensor")
    func nonFiniteInShard() throws {
        let folder = try SafetensorsTestFolder()
        try sharded(folder)
        try SafetensorsWriter.write(floats: ["c": Tensor(shape: [2], scalars: [8, .infinity])],
                                    dtype: .bfloat16, to: folder.file("model-00002-of-00002.safetensors"))
        expectError(folder, .malformed, [folder.file("model-00002-of-00002.safetensors").path,
                                         "tensor \"c\" holds +infinity at element 1 (index [1] of shape [2])"])
    }

    @Test("unsupported dtypes in shards can be skipped")
    func skipInShards() throws {
        let folder = try SafetensorsTestFolder()
        let header = #"{"ids":{"dtype":"I64","shape":[1],"data_offsets":[0,8]},"w":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}}"#
        _ = try folder.write(SafetensorsBytes.file(header: header, data: [UInt8](repeating: 0, count: 12)), to: "s1.safetensors")
        try Data(#"{"weight_map":{"ids":"s1.safetensors","w":"s1.safetensors"}}"#.utf8).write(to: folder.file(Checkpoint.indexFileName))
        expectError(folder, .unsupported, ["tensor \"ids\" has dtype I64"])
        let checkpoint = try Checkpoint(directory: folder.url, skipUnsupported: true)
        #expect(checkpoint.names == ["w"] && checkpoint.skipped == ["ids"])
    }
}

@Suite("WeightStore strict loading")
struct WeightStoreTests {
    func store(_ names: [String], shape: [Int] = [2, 3]) -> WeightStore {
        let count = shape.reduce(1, *)
        var tensors: [String: StoredTensor] = [:]
        for name in names {
            tensors[name] = StoredTensor(name: name, Tensor(shape: shape, scalars: (0..<count).map(Float.init)))
        }
        return WeightStore(tensors, source: "/models/tiny")
    }

    @Test("take returns tensors with the expected shape and finish accepts a fully used store")
    func takeAll() throws {
        var weights = store(["a.weight", "b.weight"])
        #expect(weights.names == ["a.weight", "b.weight"])
        let a = try weights.take("a.weight", shape: [2, 3])
        #expect(a.toTensor().scalars == [0, 1, 2, 3, 4, 5])
        #expect(try weights.takeOptional("absent", shape: [1]) == nil)
        #expect(try weights.takeOptional("b.weight", shape: [2, 3]) != nil)
        #expect(weights.names.isEmpty)
        try weights.finish()
    }

    @Test("a missing tensor lists close names")
    func missingListsCloseNames() throws {
        var weights = store(["model.layers.0.self_attn.q_proj.weight", "model.layers.0.self_attn.k_proj.weight",
                             "language_model.model.norm.weight", "vision_tower.embeddings.patch.weight"])
        var error = #expect(throws: FormatError.self) { try weights.take("model.layers.0.self_attn.v_proj.weight", shape: [2, 3]) }
        #expect(error?.kind == .missing)
        #expect(error?.description.contains("/models/tiny") == true)
        #expect(error?.description.contains("tensor \"model.layers.0.self_attn.v_proj.weight\" is missing") == true)
        #expect(error?.description.contains("model.layers.0.self_attn.k_proj.weight") == true)
        #expect(error?.description.contains("vision_tower") == false)
        error = #expect(throws: FormatError.self) { try weights.take("model.norm.weight", shape: [2, 3]) }
        #expect(error?.description.contains("close names: language_model.model.norm.weight") == true)
        error = #expect(throws: FormatError.self) { try weights.take("zzz", shape: [2, 3]) }
        #expect(error?.description.contains("no similar name among 4 remaining tensors") == true)
    }

    @Test("a wrong shape names expected and actual shapes")
    func wrongShape() throws {
        var weights = store(["w"])
        var error = #expect(throws: FormatError.self) { try weights.take("w", shape: [3, 2]) }
        #expect(error?.kind == .inconsistent)
        #expect(error?.description.contains("tensor \"w\" has shape [2, 3], expected [3, 2]") == true)
        error = #expect(throws: FormatError.self) { try weights.takeOptional("w", shape: [6]) }
        #expect(error?.kind == .inconsistent)
        #expect(error?.description.contains("tensor \"w\" has shape [2, 3], expected [6]") == true)
        #expect(weights.names == ["w"], "a failed take leaves the tensor in place")
    }

    @Test("taking a tensor twice is an error")
    func takeTwice() throws {
        var weights = store(["w"])
        _ = try weights.take("w", shape: [2, 3])
        let error = #expect(throws: FormatError.self) { try weights.take("w", shape: [2, 3]) }
        #expect(error?.description.contains("already taken") == true)
    }

    @Test("finish lists every unused tensor, at most 20 then a count")
    func finishListsUnused() throws {
        let few = store(["x", "y"])
        var error = #expect(throws: FormatError.self) { try few.finish() }
        #expect(error?.kind == .unexpected)
        #expect(error?.description.contains("2 checkpoint tensors were never used by the model: x, y") == true)
        let many = store((0..<25).map { String(format: "t%02d", $0) })
        error = #expect(throws: FormatError.self) { try many.finish() }
        #expect(error?.description.contains("t19") == true)
        #expect(error?.description.contains("t20") == false)
        #expect(error?.description.hasSuffix("… and 5 more") == true)
    }

    @Test("sanitize steps: remove by prefix or predicate, rename")
    func sanitize() throws {
        var weights = store(["model.rotary_emb.inv_freq", "lm_head.weight", "old.name", "vision.a", "vision.b"])
        #expect(weights.remove(prefix: "vision.") == ["vision.a", "vision.b"])
        #expect(weights.remove { $0.hasSuffix("inv_freq") } == ["model.rotary_emb.inv_freq"])
        try weights.rename("old.name", to: "new.name")
        #expect(weights.names == ["lm_head.weight", "new.name"])
        let renamed = try weights.take("new.name", shape: [2, 3])
        #expect(renamed.name == "new.name" && renamed.toTensor().scalars == [0, 1, 2, 3, 4, 5])
        var error = #expect(throws: FormatError.self) { try weights.rename("absent", to: "x") }
        #expect(error?.kind == .missing)
        error = #expect(throws: FormatError.self) { try weights.rename("lm_head.weight", to: "new.name") }
        #expect(error?.kind == .unexpected)
        _ = try weights.take("lm_head.weight", shape: [2, 3])
        try weights.finish()
    }
}
