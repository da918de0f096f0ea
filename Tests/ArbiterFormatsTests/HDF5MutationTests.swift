// Seeded random byte mutations of valid HDF5 files, anywhere in the file: reading must either succeed or
// throw a FormatError naming the file, never crash or throw anything else.
//
// Why the whole file can be mutated. Debian's libhdf5 1.10.8 itself segfaults on some corrupt metadata
// (object headers, B-trees, local and global heaps): its bounds checks there are assertions, compiled out.
// HDF5Reader therefore runs HDF5Preflight first, a pure-Swift walk of every structure libhdf5 will parse
// (superblock, object headers and their messages, local and global heaps, group and chunk B-trees, symbol
// table nodes), and refuses anything off with a FormatError before libhdf5 sees the file.
//
// Measured with a fork-per-mutation harness (one child process per mutant reads everything of the file
// through HDF5Reader and GoldenActivations; not committed), 1–8 random bytes replaced anywhere, seeded,
// over a file written by HDF5Writer (GoldenData/claims/arbiter-main.h5), two written by h5py
// (GoldenData/activations/tiny-llama/random-24.h5, tiny-llava/image-prompt.h5) and the h5py fixture:
//   - without the preflight (seeds 1000..<5000, 1000 mutants per file): 74 child processes died of SIGSEGV
//     and 21 ran past a 20 s timeout (in the first 2,400: 45 SIGSEGV, 12 timeouts of which 6 still hung
//     past 60 s when rerun alone: libhdf5 looping on a zero-sized global heap object or allocating for
//     absurd attribute sizes);
//   - with the preflight (seeds 1000..<3400, 600 mutants per file, release build): 0 signals, 0 timeouts
//     (90 s), 0 errors other than FormatError.
// No structure needed to stay out of the mutated region.
// Most crashes came from global heap collections (variable-length string attributes), then attribute
// messages, datatypes and contiguous layouts pointing outside the file.
import ArbiterTensor
import Foundation
import PropertyBased
import Testing
@testable import ArbiterFormats

/// A valid HDF5 file and the byte ranges of it holding raw data of contiguous datasets (values only).
struct MutationBase: Sendable {
    let name: String
    let bytes: [UInt8]
    let rawData: [Range<Int>]

    /// The golden fixture written by HDF5Writer.
    static func writer(folder: HDF5ScratchFolder) throws -> MutationBase {
        let url = folder.file("writer-base.h5")
        let bytes = [UInt8](try HDF5Fixtures.writeGolden(to: url))
        let ranges = Array(try HDF5Reader(url: url).contiguousDataRanges().values)
        #expect(ranges.count == 5)  // every dataset of the golden fixture is contiguous
        return MutationBase(name: "writer", bytes: bytes, rawData: ranges)
    }

    /// The h5py fixture (chunked and gzip-compressed dataset, nested group, fixed and variable strings).
    static func h5py() throws -> MutationBase {
        let bytes = [UInt8](try Data(contentsOf: HDF5Fixtures.h5py))
        let ranges = Array(try HDF5Reader(url: HDF5Fixtures.h5py).contiguousDataRanges().values)
        return MutationBase(name: "h5py", bytes: bytes, rawData: ranges)
    }

    /// The file with 1–8 bytes replaced, chosen by `seed` (SplitMix64): anywhere, or only in raw data.
    func mutated(seed: UInt64, rawDataOnly: Bool = false) -> (bytes: [UInt8], offsets: [Int]) {
        let rawSize = rawData.reduce(0) { $0 + $1.count }
        /// The `index`-th byte of the file, or of its raw data.
        func offset(_ index: UInt64) -> Int {
            guard rawDataOnly, rawSize > 0 else { return Int(index % UInt64(bytes.count)) }
            var rest = Int(index % UInt64(rawSize))
            for range in rawData {
                if rest < range.count { return range.lowerBound + rest }
                rest -= range.count
            }
            return rawData[0].lowerBound
        }
        var rng = SplitMix64(seed: seed)
        var copy = bytes
        var offsets: [Int] = []
        for _ in 0..<(1 + Int(rng.next() % 8)) {
            let offset = offset(rng.next())
            copy[offset] = UInt8(truncatingIfNeeded: rng.next())
            offsets.append(offset)
        }
        return (copy, offsets)
    }

    /// Whether every offset lies in raw data, which HDF5 never parses.
    func onlyRawData(_ offsets: [Int]) -> Bool {
        offsets.allSatisfy { offset in rawData.contains { $0.contains(offset) } }
    }
}

/// What a read of a mutated file did.
enum MutationOutcome: Equatable { case read, refused }

/// Reads everything of a mutated golden file twice: structurally through HDF5Reader (every dataset's values and
/// every attribute: what the preflight guards), and as a golden file (GoldenActivations, which also checks the
/// content digests). Returns both outcomes; records an issue for anything but a FormatError naming the file.
func readMutated(_ url: URL, offsets: [Int], original: GoldenContent? = nil)
    -> (structure: MutationOutcome, golden: MutationOutcome)? {
    func attempt(_ body: () throws -> Void) -> MutationOutcome? {
        do {
            try body()
            return .read
        } catch let error as FormatError {
            #expect(error.description.contains(url.path), "mutation at \(offsets): \(error)")
            return .refused
        } catch {
            Issue.record("mutation at \(offsets): expected a FormatError, got \(type(of: error)): \(error)")
            return nil
        }
    }
    let structure = attempt {
        let reader = try HDF5Reader(url: url)
        for name in try reader.datasetNames() {
            if try reader.isFloatingPoint(name) { _ = try reader.readFloat32(name) } else { _ = try reader.readInt64(name) }
        }
        for object in [nil] + (try reader.datasetNames()) {
            for name in try reader.attributeNames(of: object) { _ = reader.hasAttribute(name, of: object) }
        }
    }
    var content: GoldenContent?
    let golden = attempt { content = try GoldenContent(url) }
    guard let structure, let golden else { return nil }
    // What reads as a golden file is what was written: bytes HDF5 never uses (padding, free heap space, unused
    // B-tree slots) may change, the content may not.
    if golden == .read, let original, content != original {
        Issue.record("mutation at \(offsets) read as a golden file with other content")
    }
    return (structure, golden)
}

/// Everything a golden file says: attributes, float datasets, integer datasets.
struct GoldenContent: Equatable {
    let attributes: [String]
    let floats: [String: Tensor]
    let integers: [String: [Int]]

    init(_ url: URL) throws {
        let golden = try GoldenActivations(url: url)
        attributes = [golden.modelID, golden.modelType, golden.source, "\(golden.seed)", golden.caseName,
                      golden.prompt ?? "-"]
        var floats: [String: Tensor] = [:]
        for hook in golden.hookNames { floats[hook] = try golden.tensor(hook) }
        var integers: [String: [Int]] = [:]
        for name in golden.integerNames { integers[name] = try golden.integers(name).values }
        self.floats = floats
        self.integers = integers
    }
}

@Suite("HDF5 byte mutations")
struct HDF5MutationTests {
    @Test("random mutations anywhere in a valid file read or throw a FormatError (property)")
    func randomMutations() async throws {
        let folder = try HDF5ScratchFolder("mutation")
        defer { folder.remove() }
        let bases = [try MutationBase.writer(folder: folder), try MutationBase.h5py()]
        let originals = try bases.map { base in
            let url = folder.file("original-\(base.name).h5")
            try Data(base.bytes).write(to: url)
            return try GoldenContent(url)
        }
        await propertyCheck(count: 400, input: Gen.uint64(in: 0...UInt64.max)) { seed in
            let base = bases[Int(seed % UInt64(bases.count))]
            let (bytes, offsets) = base.mutated(seed: seed)
            let url = folder.file("mutant-\(base.name)-\(seed).h5")
            try Data(bytes).write(to: url)
            defer { try? FileManager.default.removeItem(at: url) }
            let outcome = readMutated(url, offsets: offsets, original: originals[Int(seed % UInt64(bases.count))])
            let handled = outcome != nil
            #expect(handled)
            // A golden file reads only if its structure does: the digests never let a broken file through.
            if let outcome, outcome.golden == .read { #expect(outcome.structure == .read) }
        }
    }

    @Test("400 fixed-seed mutations anywhere; 100 raw-data-only ones read as HDF5, refused as golden files",
          arguments: ["writer", "h5py"])
    func fixedSeeds(_ which: String) throws {
        let folder = try HDF5ScratchFolder("mutation")
        defer { folder.remove() }
        let base = which == "writer" ? try MutationBase.writer(folder: folder) : try MutationBase.h5py()
        let original = folder.file("original.h5")
        try Data(base.bytes).write(to: original)
        let intact = readMutated(original, offsets: [])
        #expect(intact?.structure == .read && intact?.golden == .read)
        let originalContent = try GoldenContent(original)
        var outcomes: [MutationOutcome] = []
        for seed in UInt64(0)..<400 {
            let (bytes, offsets) = base.mutated(seed: seed)
            let url = folder.file("fixed-\(seed).h5")
            try Data(bytes).write(to: url)
            defer { try? FileManager.default.removeItem(at: url) }
            // A mutant that reads as a golden file must hold the original content (checked in readMutated).
            let outcome = readMutated(url, offsets: offsets, original: originalContent)
            if let outcome { outcomes.append(outcome.structure) }
            // A mutation confined to raw data changes values only: the file must still read as HDF5.
            if base.onlyRawData(offsets) {
                #expect(outcome?.structure == .read, "raw-data mutation at \(offsets) was refused by the reader")
            }
        }
        #expect(outcomes.count == 400)
        #expect(outcomes.contains(.read) && outcomes.contains(.refused))
        // Mutations confined to raw data on purpose: the preflight never looks at values, the digests do.
        for seed in UInt64(1000)..<1100 {
            let (bytes, offsets) = base.mutated(seed: seed, rawDataOnly: true)
            #expect(base.onlyRawData(offsets))
            let url = folder.file("raw-\(seed).h5")
            try Data(bytes).write(to: url)
            defer { try? FileManager.default.removeItem(at: url) }
            let outcome = readMutated(url, offsets: offsets, original: originalContent)
            #expect(outcome?.structure == .read, "raw-data mutation at \(offsets) was refused by the reader")
            let changed = offsets.contains { bytes[$0] != base.bytes[$0] }
            #expect(outcome?.golden == (changed ? .refused : .read), "raw-data mutation at \(offsets), changed \(changed)")
        }
    }

    @Test("mutating a value's bytes changes exactly that value; the golden file is refused naming the dataset")
    func rawDataMutationChangesValue() throws {
        let folder = try HDF5ScratchFolder("mutation")
        defer { folder.remove() }
        let url = folder.file("base.h5")
        var bytes = [UInt8](try HDF5Fixtures.writeGolden(to: url))
        let range = try #require(try HDF5Reader(url: url).contiguousDataRanges()["logits"])
        #expect(range.count == 15 * 4)
        // Element 2 of logits (0.0) becomes 1.0 = 0x3F800000, little-endian.
        bytes.replaceSubrange((range.lowerBound + 8)..<(range.lowerBound + 12), with: [0x00, 0x00, 0x80, 0x3F])
        try Data(bytes).write(to: url)
        var expected = HDF5Fixtures.ramp([3, 5], scale: 0.5)
        expected.scalars[2] = 1
        #expect(try HDF5Reader(url: url).readFloat32("logits") == expected)
        let golden = try GoldenActivations(url: url)  // attributes, names, types and shapes are as written
        #expect(try golden.tensor("hook_embed") == HDF5Fixtures.ramp([3, 4]))
        let error = expectHDF5Error(naming: url) { try golden.tensor("logits") }
        #expect(error?.kind == .inconsistent)
        #expect(error?.problem.contains("dataset 'logits' (float32 [3, 5]) differs from what was written") == true,
                "\(String(describing: error))")
    }

    @Test("a changed attribute or a renamed dataset is refused, naming it")
    func attributeAndNameChanges() throws {
        let folder = try HDF5ScratchFolder("mutation")
        defer { folder.remove() }
        let url = folder.file("base.h5")
        let original = [UInt8](try HDF5Fixtures.writeGolden(to: url))
        func replaced(_ old: String, _ new: String) throws -> FormatError? {
            var bytes = original
            let (a, b) = (Array(old.utf8), Array(new.utf8))
            let at = try #require((0...(bytes.count - a.count)).first { Array(bytes[$0..<($0 + a.count)]) == a })
            bytes.replaceSubrange(at..<(at + a.count), with: b)
            try Data(bytes).write(to: url)
            #expect(HDF5Fixtures.structureReads(url))
            return expectHDF5Error(naming: url) { try GoldenActivations(url: url) }
        }
        // The prompt "Hello" (a variable-length string in the global heap) becomes "Jello".
        let prompt = try replaced("Hello", "Jello")
        #expect(prompt?.problem.contains("attribute 'prompt' of the root group (now 'Jello') differs") == true,
                "\(String(describing: prompt))")
        // A dataset's name in the group's local heap: the file now holds a dataset nobody wrote.
        let name = try replaced("hook_embed\u{0}", "hook_embxd\u{0}")  // NUL-terminated: the heap, not the record
        #expect(name?.problem.contains("dataset 'hook_embxd' (float32 [3, 4]) was not in the file when it was written")
                == true, "\(String(describing: name))")
        #expect(name?.problem.contains("dataset 'hook_embed' (float32 3x4) is recorded but no longer in the file")
                == true)
    }
}
