// Seeded random byte mutations of a valid golden file: reading must either succeed or throw a FormatError
// naming the file, never crash or throw anything else.
//
// Safe region. Debian's libhdf5 1.10.8 itself segfaults on some corrupt metadata (object headers, B-trees,
// local heaps): a C harness forking one child per mutation crashed on 12 of 500 files with 1–8 random bytes
// changed anywhere. Those crashes are inside the C library, out of reach of a wrapper, so the mutations here
// are restricted to bytes HDF5 handles without crashing:
//   - the raw data of contiguous datasets (found through H5Dget_offset/H5Dget_storage_size): HDF5 never
//     parses it, so any change is a change of values; and
//   - the version-0 superblock (the first 96 bytes: signature, versions, sizes, base/EOF/root addresses, root
//     symbol-table entry), which HDF5 validates on open; 20,000 random 1–8-byte mutations of it crashed no
//     child process in the same harness.
import ArbiterTensor
import Foundation
import PropertyBased
import Testing
@testable import ArbiterFormats

/// A valid golden file and the byte ranges of it that may be mutated.
struct MutationBase {
    let bytes: [UInt8]
    let region: [Range<Int>]
    let size: Int

    static let superblockBytes = 96

    init(folder: HDF5ScratchFolder) throws {
        let url = folder.file("base.h5")
        bytes = [UInt8](try HDF5Fixtures.writeGolden(to: url))
        var ranges = Array(try HDF5Reader(url: url).contiguousDataRanges().values).sorted { $0.lowerBound < $1.lowerBound }
        #expect(ranges.count == 5)  // every dataset of the golden fixture is contiguous
        // Superblock version (byte 8) 0 is the 96-byte layout described above; other versions are not mutated.
        if bytes.count > 8, bytes[8] == 0 { ranges.insert(0..<Self.superblockBytes, at: 0) }
        region = ranges
        size = ranges.reduce(0) { $0 + $1.count }
    }

    /// Offset of the `index`-th byte of the region.
    func offset(_ index: Int) -> Int {
        var rest = index
        for range in region {
            if rest < range.count { return range.lowerBound + rest }
            rest -= range.count
        }
        return region[0].lowerBound
    }

    /// The file with 1–8 bytes of the region replaced, chosen by `seed` (SplitMix64).
    func mutated(seed: UInt64) -> (bytes: [UInt8], offsets: [Int]) {
        var state = seed
        func next() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
        var copy = bytes
        var offsets: [Int] = []
        for _ in 0..<(1 + Int(next() % 8)) {
            let offset = offset(Int(next() % UInt64(size)))
            copy[offset] = UInt8(truncatingIfNeeded: next())
            offsets.append(offset)
        }
        return (copy, offsets)
    }
}

/// What a read of a mutated file did.
enum MutationOutcome: Equatable { case read, refused }

/// Reads everything of a golden file; returns whether it read, records an issue for anything but a FormatError.
func readMutated(_ url: URL, offsets: [Int]) -> MutationOutcome? {
    do {
        let golden = try GoldenActivations(url: url)
        _ = try golden.inputIDs()
        for hook in golden.hookNames { _ = try golden.tensor(hook) }
        let reader = try HDF5Reader(url: url)
        for name in try reader.attributeNames() { _ = reader.hasAttribute(name) }
        return .read
    } catch let error as FormatError {
        #expect(error.description.contains(url.path), "mutation at \(offsets): \(error)")
        return .refused
    } catch {
        Issue.record("mutation at \(offsets): expected a FormatError, got \(type(of: error)): \(error)")
        return nil
    }
}

@Suite("HDF5 byte mutations")
struct HDF5MutationTests {
    @Test("random mutations of a valid file read or throw a FormatError (property)")
    func randomMutations() async throws {
        let folder = try HDF5ScratchFolder("mutation")
        defer { folder.remove() }
        let base = try MutationBase(folder: folder)
        await propertyCheck(count: 150, input: Gen.uint64(in: 0...UInt64.max)) { seed in
            let (bytes, offsets) = base.mutated(seed: seed)
            let url = folder.file("mutant-\(seed).h5")
            try Data(bytes).write(to: url)
            defer { try? FileManager.default.removeItem(at: url) }
            #expect(readMutated(url, offsets: offsets) != nil)
        }
    }

    @Test("200 fixed-seed mutations: both outcomes occur, and raw-data-only mutations always read")
    func fixedSeeds() throws {
        let folder = try HDF5ScratchFolder("mutation")
        defer { folder.remove() }
        let base = try MutationBase(folder: folder)
        var outcomes: [MutationOutcome] = []
        for seed in UInt64(0)..<200 {
            let (bytes, offsets) = base.mutated(seed: seed)
            let url = folder.file("fixed-\(seed).h5")
            try Data(bytes).write(to: url)
            defer { try? FileManager.default.removeItem(at: url) }
            let outcome = readMutated(url, offsets: offsets)
            if let outcome { outcomes.append(outcome) }
            // A mutation confined to raw data changes values only: the file must still read.
            if offsets.allSatisfy({ $0 >= MutationBase.superblockBytes }) {
                #expect(outcome == .read, "raw-data mutation at \(offsets) was refused")
            }
        }
        #expect(outcomes.count == 200)
        #expect(outcomes.contains(.read) && outcomes.contains(.refused))
    }

    @Test("mutating a value's bytes changes exactly that value")
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
        #expect(try GoldenActivations(url: url).tensor("logits") == expected)
    }
}
