// A corpus of broken HDF5 and golden files, generated per test: each must throw a FormatError naming the file.
import ArbiterTensor
import Foundation
import Testing
@testable import ArbiterFormats

/// One malformed input: how to make it, and what the reader should say (a fragment of the problem).
struct HDF5MalformedCase: CustomTestStringConvertible, Sendable {
    let name: String
    let expectedKind: FormatError.Kind?
    let expectedProblem: String?
    let make: @Sendable (URL) throws -> Void
    /// What is attempted on the file; by default every read of a golden file.
    let attempt: @Sendable (URL) throws -> Void

    init(_ name: String, kind: FormatError.Kind? = nil, problem: String? = nil,
         attempt: @escaping @Sendable (URL) throws -> Void = HDF5MalformedCase.readEverything,
         make: @escaping @Sendable (URL) throws -> Void) {
        self.name = name
        self.expectedKind = kind
        self.expectedProblem = problem
        self.make = make
        self.attempt = attempt
    }

    var testDescription: String { name }

    /// Opens as a golden file and reads every hook and the token ids.
    static let readEverything: @Sendable (URL) throws -> Void = { url in
        let golden = try GoldenActivations(url: url)
        _ = try golden.inputIDs()
        for hook in golden.hookNames { _ = try golden.tensor(hook) }
    }

    static func bytes(_ data: Data) -> @Sendable (URL) throws -> Void { { try data.write(to: $0) } }

    /// A valid golden file's bytes cut to `length` (negative: counted from the end).
    static func truncated(_ length: Int) -> @Sendable (URL) throws -> Void {
        { url in
            let full = try HDF5Fixtures.writeGolden(to: url)
            try full.prefix(length >= 0 ? length : full.count + length).write(to: url)
        }
    }

    /// `count` seeded pseudo-random bytes (SplitMix64), optionally after a prefix.
    static func garbage(seed: UInt64, count: Int, prefix: [UInt8] = []) -> Data {
        var rng = SplitMix64(seed: seed)
        var bytes = prefix
        while bytes.count < count { bytes.append(UInt8(truncatingIfNeeded: rng.next())) }
        return Data(bytes)
    }

    static let signature: [UInt8] = [0x89, 0x48, 0x44, 0x46, 0x0D, 0x0A, 0x1A, 0x0A]

    /// A golden-like file built directly with HDF5Writer (for wrong dtypes).
    static func custom(_ body: @escaping @Sendable (HDF5Writer) throws -> Void) -> @Sendable (URL) throws -> Void {
        { url in
            let writer = try HDF5Writer(url: url)
            for (name, value) in [("model_id", "m"), ("model_type", "llama"), ("source", "test"), ("case", "c")] {
                try writer.setAttribute(name, value)
            }
            try writer.setAttribute("seed", 1)
            try body(writer)
            try writer.commit()
        }
    }

    static let all: [HDF5MalformedCase] = [
        HDF5MalformedCase("missing file", kind: .unreadable, problem: "does not exist") { _ in },
        HDF5MalformedCase("a folder named .h5", kind: .unreadable) { url in
            try FileManager.default.createDirectory(at: url, withIntermediateDirectories: false)
        },
        HDF5MalformedCase("zero bytes", kind: .malformed, problem: "not an HDF5 file", make: bytes(Data())),
        HDF5MalformedCase("one byte", kind: .malformed, make: bytes(Data([0x89]))),
        HDF5MalformedCase("text file renamed .h5", kind: .malformed, problem: "not an HDF5 file",
                      make: bytes(Data("model_id,logits\ntiny-llama,0.5\n".utf8))),
        HDF5MalformedCase("JSON file renamed .h5", kind: .malformed, make: bytes(Data("{\"format_version\": 1}".utf8))),
        HDF5MalformedCase("random garbage 4 KiB", kind: .malformed, make: bytes(garbage(seed: 1, count: 4096))),
        HDF5MalformedCase("random garbage 64 KiB", kind: .malformed, make: bytes(garbage(seed: 2, count: 65536))),
        HDF5MalformedCase("signature then garbage", make: bytes(garbage(seed: 3, count: 2048, prefix: signature))),
        HDF5MalformedCase("signature only", make: bytes(Data(signature))),
        HDF5MalformedCase("truncated to 8 bytes", make: truncated(8)),
        HDF5MalformedCase("truncated to 40 bytes", make: truncated(40)),
        HDF5MalformedCase("truncated to 96 bytes", make: truncated(96)),
        HDF5MalformedCase("truncated to 200 bytes", make: truncated(200)),
        HDF5MalformedCase("truncated to 800 bytes", make: truncated(800)),
        HDF5MalformedCase("truncated to 2000 bytes", make: truncated(2000)),
        HDF5MalformedCase("truncated by 1 byte", make: truncated(-1)),
        HDF5MalformedCase("truncated by 64 bytes", make: truncated(-64)),
        HDF5MalformedCase("truncated by half", make: { url in
            let full = try HDF5Fixtures.writeGolden(to: url)
            try full.prefix(full.count / 2).write(to: url)
        }),
        HDF5MalformedCase("h5py file truncated by 100 bytes", make: { url in
            let full = try Data(contentsOf: HDF5Fixtures.h5py)
            try full.prefix(full.count - 100).write(to: url)
        }),
        HDF5MalformedCase("no format_version", kind: .missing, problem: "regenerate with `make goldens`") { url in
            try HDF5Fixtures.writeGolden(to: url, version: nil)
        },
        HDF5MalformedCase("format_version 3", kind: .unsupported, problem: "format_version 3 is not supported (this Arbiter reads version 2); regenerate with `make goldens`") { url in
            try HDF5Fixtures.writeGolden(to: url, version: 3)
        },
        HDF5MalformedCase("format_version 1 (no content digests)", kind: .unsupported, problem: "format_version 1 is not supported") { url in
            try HDF5Fixtures.writeGolden(to: url, version: 1, contentDigests: false)
        },
        HDF5MalformedCase("no content digests", kind: .missing, problem: "lacks root attribute 'content_digests'") { url in
            try HDF5Fixtures.writeGolden(to: url, contentDigests: false)
        },
        HDF5MalformedCase("format_version 0", kind: .unsupported, problem: "format_version 0") { url in
            try HDF5Fixtures.writeGolden(to: url, version: 0)
        },
        HDF5MalformedCase("format_version stored as a string", kind: .unsupported, problem: "expected an integer",
                      make: custom { try $0.setAttribute("format_version", "1") }),
        HDF5MalformedCase("format_version stored as a float", kind: .unsupported, problem: "expected an integer",
                      make: custom { try $0.setAttribute("format_version", 1.0) }),
        HDF5MalformedCase("no model_id", kind: .missing, problem: "model_id") { url in
            try HDF5Fixtures.writeGolden(to: url, omitAttribute: "model_id")
        },
        HDF5MalformedCase("no seed", kind: .missing, problem: "seed") { url in
            try HDF5Fixtures.writeGolden(to: url, omitAttribute: "seed")
        },
        HDF5MalformedCase("seed stored as a string", kind: .unsupported, make: custom { writer in
            try writer.setAttribute("format_version", GoldenActivations.formatVersion)
            try writer.setAttribute("seed", "seven")
            try writer.write("input_ids", int64: [1], shape: [1])
        }),
        HDF5MalformedCase("no input_ids dataset", kind: .missing, problem: "input_ids") { url in
            try HDF5Fixtures.writeGolden(to: url, omitDataset: "input_ids")
        },
        HDF5MalformedCase("input_ids of rank 2", kind: .inconsistent, problem: "expected [T]") { url in
            try HDF5Fixtures.writeGolden(to: url, inputIDsShape: [3, 1])
        },
        HDF5MalformedCase("input_ids stored as float32", kind: .unsupported, problem: "is float32, expected int64", make: custom { writer in
            try writer.setAttribute("format_version", GoldenActivations.formatVersion)
            try writer.write("input_ids", HDF5Fixtures.ramp([3]))
        }),
        HDF5MalformedCase("logits stored as int64", kind: .unsupported, problem: "'logits' is int64, expected float32", make: custom { writer in
            try writer.setAttribute("format_version", GoldenActivations.formatVersion)
            try writer.write("input_ids", int64: [1, 2, 3], shape: [3])
            try writer.write("logits", int64: Array(repeating: 0, count: 15), shape: [3, 5])
        }),
        HDF5MalformedCase("attention pattern of the wrong shape", kind: .inconsistent, problem: "expected [H, 3, 3]") { url in
            try HDF5Fixtures.writeGolden(to: url, patternShape: [2, 3, 4])
        },
        HDF5MalformedCase("residual stream with the wrong token count", kind: .inconsistent, problem: "expected [3, *]",
                      make: custom { writer in
            try writer.setAttribute("format_version", GoldenActivations.formatVersion)
            try writer.write("input_ids", int64: [1, 2, 3], shape: [3])
            try writer.write("blocks.0.hook_resid_pre", HDF5Fixtures.ramp([4, 2]))
        }),
        HDF5MalformedCase("hook absent from a valid file", kind: .missing, problem: "available: blocks.0.attn.hook_pattern",
                      attempt: { url in _ = try GoldenActivations(url: url).tensor("blocks.7.hook_mlp_out") },
                      make: { url in try HDF5Fixtures.writeGolden(to: url) }),
        HDF5MalformedCase("dataset absent from a valid file (HDF5Reader)", kind: .missing, problem: "no dataset 'pixel_values'",
                      attempt: { url in _ = try HDF5Reader(url: url).readFloat32("pixel_values") },
                      make: { url in try HDF5Fixtures.writeGolden(to: url) }),
    ]
}

@Suite("HDF5 malformed corpus")
struct HDF5MalformedTests {
    @Test("every malformed file throws a FormatError naming the file", arguments: HDF5MalformedCase.all)
    func malformed(_ testCase: HDF5MalformedCase) throws {
        let folder = try HDF5ScratchFolder("malformed")
        defer { folder.remove() }
        let url = folder.file("case.h5")
        try testCase.make(url)
        let error = expectHDF5Error(naming: url, "\(testCase.name)") { try testCase.attempt(url) }
        if let kind = testCase.expectedKind {
            #expect(error?.kind == kind, "\(testCase.name): \(error?.description ?? "no error")")
        }
        if let problem = testCase.expectedProblem {
            #expect(error?.problem.contains(problem) == true, "\(testCase.name): \(error?.description ?? "no error")")
        }
    }

    @Test("the corpus is large enough")
    func corpusSize() {
        #expect(HDF5MalformedCase.all.count >= 25)
        #expect(Set(HDF5MalformedCase.all.map(\.name)).count == HDF5MalformedCase.all.count)
    }

    @Test("a file truncated at any of 40 evenly spaced lengths is refused on open")
    func truncatedEverywhere() throws {
        let folder = try HDF5ScratchFolder("truncated")
        defer { folder.remove() }
        let source = folder.file("full.h5")
        let full = try HDF5Fixtures.writeGolden(to: source)
        for step in 0..<40 {
            let length = full.count * step / 40
            let url = folder.file("cut-\(length).h5")
            try full.prefix(length).write(to: url)
            expectHDF5Error(naming: url, "cut at \(length) of \(full.count) bytes") { try HDF5Reader(url: url) }
        }
    }
}
