// docs/your-model.md run as written, and the check of issue #21: a model folder Arbiter has never seen (the
// own-model fixture: a tiny random LLaVA with a WordLevel tokenizer of its own), the guide's layout and dataset,
// and `verify` and the claim tests on them end to end.
//
// The guide's conventions, so that every example in it is run:
//   <!-- file: PATH -->       before a fenced block: the block is written to PATH in the walkthrough folder;
//   ```sh                     run with bash -e in that folder, `arbiter` first on PATH, and must exit 0 —
//   <!-- exit: nonzero -->    or, so marked, exit nonzero (without a signal, and not with a usage error);
//   <!-- output -->           before a fenced block: each of its lines is a line of the output (stdout and stderr)
//                             of the sh block before it, `…` standing for any text.
// Any other fenced block fails the test. The walkthrough folder links `Tests` to this checkout's (the guide copies
// the fixture from there); `swift test` in a block runs the test bundle already built (a build inside a test
// would wait for this one's lock). A dataset file's pictures, `images/<colour>-<shape>.png`, are drawn as the
// guide describes them: that shape in that colour on white, 32 × 32.
import ArbiterData
import ArbiterFormats
import Foundation
import Testing

struct GuideBlock {
    enum Kind: Equatable {
        case file(String)
        case shell(failing: Bool)
        case output
    }

    let kind: Kind
    let text: String
    /// The line of the opening fence (1-based), for messages.
    let line: Int
}

struct GuideError: Error, CustomStringConvertible {
    let description: String
}

enum Guide {
    static let url = Repository.root.appendingPathComponent("docs/your-model.md")

    /// The fenced blocks of the guide, classified by the marker comment before each.
    static func blocks() throws -> [GuideBlock] {
        let lines = try String(contentsOf: url, encoding: .utf8).components(separatedBy: "\n")
        var blocks: [GuideBlock] = []
        var marker: (text: String, line: Int)?
        var i = 0
        while i < lines.count {
            let line = lines[i]
            if line.hasPrefix("<!--") && line.hasSuffix("-->") {
                marker = (String(line.dropFirst(4).dropLast(3)).trimmingCharacters(in: .whitespaces), i + 1)
            } else if line.hasPrefix("```") {
                let language = String(line.dropFirst(3))
                guard let end = lines[(i + 1)...].firstIndex(where: { $0.hasPrefix("```") }) else {
                    throw GuideError(description: "docs/your-model.md:\(i + 1): the block is not closed")
                }
                let text = lines[(i + 1)..<end].joined(separator: "\n") + "\n"
                let kind: GuideBlock.Kind
                switch (marker?.text, language) {
                case (let m?, _) where m.hasPrefix("file: "): kind = .file(String(m.dropFirst("file: ".count)))
                case ("output", _): kind = .output
                case ("exit: nonzero", "sh"): kind = .shell(failing: true)
                case (nil, "sh"): kind = .shell(failing: false)
                default:
                    throw GuideError(description: "docs/your-model.md:\(i + 1): a ```\(language) block "
                        + "\(marker.map { "marked '\($0.text)'" } ?? "without a marker") is neither a file, a command "
                        + "nor an output; every example of the guide must run")
                }
                blocks.append(GuideBlock(kind: kind, text: text, line: i + 1))
                marker = nil
                i = end
            } else if let m = marker, !line.trimmingCharacters(in: .whitespaces).isEmpty {
                throw GuideError(description: "docs/your-model.md:\(m.line): the marker '\(m.text)' is not followed "
                    + "by a block")
            }
            i += 1
        }
        return blocks
    }

    /// Whether an output line matches an expected line (`…` stands for any text).
    static func matches(_ line: String, _ expected: String) -> Bool {
        let parts = expected.components(separatedBy: "…")
        guard parts.count > 1 else { return line == expected }
        guard line.hasPrefix(parts[0]) else { return false }
        var rest = line.dropFirst(parts[0].count)
        for part in parts.dropFirst().dropLast() where !part.isEmpty {
            guard let found = rest.range(of: part) else { return false }
            rest = rest[found.upperBound...]
        }
        return rest.hasSuffix(parts.last!)
    }
}

/// The walkthrough folder: links to the checkout's Tests, the guide's files and pictures, commands run in it.
final class Walkthrough {
    let folder: TemporaryFolder
    var url: URL { folder.url }

    init() throws {
        folder = try TemporaryFolder()
        try FileManager.default.createSymbolicLink(at: url.appendingPathComponent("Tests"),
                                                   withDestinationURL: Repository.root.appendingPathComponent("Tests"))
    }

    /// Writes a file of the guide; a dataset file gets its pictures.
    func write(_ path: String, _ text: String) throws {
        let file = url.appendingPathComponent(path)
        try FileManager.default.createDirectory(at: file.deletingLastPathComponent(), withIntermediateDirectories: true)
        try Data(text.utf8).write(to: file)
        if file.lastPathComponent == ConflictDataset.fileName { try drawPictures(of: file) }
    }

    /// `images/<colour>-<shape>.png` for every item of `dataset`: that shape in that colour on white, 32 × 32.
    func drawPictures(of dataset: URL) throws {
        let document = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: dataset)) as? [String: Any])
        for item in document["items"] as? [[String: Any]] ?? [] {
            guard let path = item["image"] as? String else { continue }
            let name = URL(fileURLWithPath: path).deletingPathExtension().lastPathComponent.split(separator: "-")
            let color = try #require(name.first.flatMap { Vocabulary.color(named: String($0)) },
                                     "\(path): the guide's pictures are named <colour>-<shape>.png")
            let shape = try #require(name.count == 2 ? Shape(rawValue: String(name[1])) : nil,
                                     "\(path): the guide's pictures are named <colour>-<shape>.png")
            let scene = Scene(size: 32, background: "white", noise: 0, noiseSeed: 0,
                              objects: [SceneObject(shape: shape, color: color.name, x: 16, y: 16, r: 11)])
            let file = dataset.deletingLastPathComponent().appendingPathComponent(path)
            try FileManager.default.createDirectory(at: file.deletingLastPathComponent(),
                                                    withIntermediateDirectories: true)
            try PNGImage.write(Rasterizer.render(scene), to: file)
        }
    }

    /// The test bundle running this test (the guide's `swift test` runs it).
    static var testBundle: URL { URL(fileURLWithPath: CommandLine.arguments[0]) }

    /// Runs a sh block of the guide.
    func shell(_ script: String, sourceLocation: SourceLocation = #_sourceLocation) throws -> CLIResult {
        let prelude = """
        swift() {
          [ "$1" = test ] || { echo "the guide may run 'swift test' only, not: swift $*" >&2; return 2; }
          shift
          local filter=()
          while [ $# -gt 0 ]; do
            case "$1" in
              --filter) filter=(--filter "$2"); shift 2 ;;
              -c|-Xswiftc) shift 2 ;;
              *) echo "unexpected swift test option $1" >&2; return 2 ;;
            esac
          done
          "$ARBITER_TEST_BUNDLE" --testing-library swift-testing "${filter[@]}"
        }

        """
        let path = CLI.executable.deletingLastPathComponent().path + ":"
            + (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin")
        return try Subprocess.run(URL(fileURLWithPath: "/bin/bash"), ["-e", "-c", prelude + script], in: url,
                                  environment: ["PATH": path, "ARBITER_TEST_BUNDLE": Self.testBundle.path],
                                  timeout: 1800, sourceLocation: sourceLocation)
    }
}

@Suite("Your own model (docs/your-model.md)", .serialized)
struct YourModelTests {
    @Test("the guide's blocks are all files, commands or outputs, and it walks through every step")
    func guideShape() throws {
        let blocks = try Guide.blocks()
        let files = blocks.compactMap { if case .file(let p) = $0.kind { p } else { nil } }
        #expect(Set(files).isSuperset(of: ["my-layout.json", "my-data/dataset.json", "minimal/dataset.json"]),
                "\(files)")
        let commands = blocks.filter { if case .shell = $0.kind { true } else { false } }.map(\.text).joined()
        for step in ["arbiter layout check", "arbiter data check", "arbiter run", "arbiter eval", "arbiter verify",
                     "--layout", "--require holds", "ARBITER_DATA=", "ARBITER_LAYOUT=", "swift test"] {
            #expect(commands.contains(step), "the guide runs no '\(step)'")
        }
        #expect(Guide.matches("  image  0..<16", "  image…16"))
        #expect(!Guide.matches("  image  0..<16", "  image…17"))
        #expect(Guide.matches("a b c", "a b c") && !Guide.matches("a b c d", "a b c"))
    }

    @Test("the guide's layout is the fixture's (the one the reference run was built with)")
    func layoutIsTheFixtures() throws {
        let block = try #require(try Guide.blocks().first { $0.kind == .file("my-layout.json") })
        var guide = try #require(try JSONSerialization.jsonObject(with: Data(block.text.utf8)) as? [String: Any])
        let fixtureURL = Repository.root.appendingPathComponent("Tests/ArbiterCLITests/Fixtures/own-model/layout.json")
        var fixture = try jsonObject(at: fixtureURL)
        guide["description"] = nil
        fixture["description"] = nil
        let canonical = { (object: [String: Any]) in
            try JSONSerialization.data(withJSONObject: object, options: .sortedKeys)
        }
        #expect(try canonical(guide) == canonical(fixture))
    }

    @Test("every example in docs/your-model.md runs as written", .timeLimit(.minutes(60)))
    func guideRuns() throws {
        let walkthrough = try Walkthrough()
        var last: (block: GuideBlock, result: CLIResult)?
        for block in try Guide.blocks() {
            let at = "docs/your-model.md:\(block.line)"
            switch block.kind {
            case .file(let path):
                try walkthrough.write(path, block.text)
            case .shell(let failing):
                let r = try walkthrough.shell(block.text)
                #expect(!r.signalled, "\(at): \(r)")
                if failing {
                    // 64 is a usage error: the command did not run, so it is not the failure the guide shows.
                    #expect(r.status != 0 && r.status != 64, "\(at) should fail:\n\(block.text)\(r.stdout)\(r.stderr)")
                } else {
                    #expect(r.status == 0, "\(at) failed:\n\(block.text)\(r.stdout)\(r.stderr)")
                }
                last = (block, r)
            case .output:
                let (command, r) = try #require(last, "\(at): an output block before any command")
                let printed = (r.stdout + r.stderr).components(separatedBy: "\n")
                for expected in block.text.components(separatedBy: "\n") where !expected.isEmpty {
                    let source = "the output of the command at line \(command.line)"
                    #expect(printed.contains { Guide.matches($0, expected) },
                            "\(at): '\(expected)' is not in \(source):\n\(r.stdout)\(r.stderr)")
                }
            }
        }
    }

    /// #21's check: the model copied into a new folder, the guide's layout and dataset, `verify` with them, then
    /// the claim tests on that model and data only, which must give verify's verdicts.
    @Test("a model and data Arbiter has never seen: verify, then the claim tests give its verdicts",
          .timeLimit(.minutes(60)))
    func endToEnd() throws {
        let walkthrough = try Walkthrough()
        try FileManager.default.copyItem(
            at: Repository.root.appendingPathComponent("Tests/ArbiterCLITests/Fixtures/own-model/model"),
            to: walkthrough.url.appendingPathComponent("my-model"))
        for block in try Guide.blocks() {
            if case .file(let path) = block.kind, path == "my-layout.json" || path.hasPrefix("my-data/") {
                try walkthrough.write(path, block.text)
            }
        }
        let model = walkthrough.folder.path("my-model"), data = walkthrough.folder.path("my-data")
        let layout = walkthrough.folder.path("my-layout.json")
        let verify = try CLI.run(["verify", "--model", model, "--data", data, "--layout", layout, "--name", "own-llava",
                                  "--json", "--out", walkthrough.folder.path("report")], timeout: 1800)
        #expect(verify.status == 0 && !verify.signalled, "verify did not complete: \(verify)")
        let json = try #require(try JSONSerialization.jsonObject(with: Data(verify.stdout.utf8)) as? [String: Any],
                                "verify --json printed no JSON: \(verify)")
        let claims = try #require((json["models"] as? [[String: Any]])?.first?["claims"] as? [[String: Any]])
        let verdicts = Dictionary(uniqueKeysWithValues: claims.compactMap { c in
            (c["id"] as? String).map { ($0, c["verdict"] as? String ?? "") }
        })
        #expect(verdicts.count == 7, "\(verdicts)")
        let report = try String(contentsOfFile: walkthrough.folder.path("report/report.md"), encoding: .utf8)
        #expect(report.contains("own-llava"), "the report does not name the model by --name")
        #expect(report.contains("own-words"), "the report does not record the layout")

        let tests = try Subprocess.run(
            Walkthrough.testBundle, ["--testing-library", "swift-testing", "--filter", "ClaimTests"],
            environment: ["ARBITER_MODEL": model, "ARBITER_DATA": data, "ARBITER_LAYOUT": layout], timeout: 1800)
        let output = tests.stdout + tests.stderr
        #expect(!tests.signalled, "\(tests)")
        #expect(output.contains(model), "the claim tests did not run on \(model):\n\(output.suffix(3000))")
        for bundled in ["arbiter-main", "arbiter-shortcut", "tiny-llava"] {
            #expect(!output.contains(bundled), "the claim tests ran on the bundled \(bundled) too")
        }
        let lines = output.components(separatedBy: "\n")
        for (id, verdict) in verdicts.sorted(by: { $0.key < $1.key }) {
            let holds = verdict == "holds" || verdict == "holds directionally"
            let failed = lines.contains { $0.contains("recorded an issue") && $0.contains("\"\(id)\"") }
            #expect(failed == !holds,
                    "claim \(id): verify says '\(verdict)', the claim test \(failed ? "failed" : "passed")")
        }
        #expect((tests.status == 0) == verdicts.values.allSatisfy { $0 == "holds" || $0 == "holds directionally" },
                "\(tests)")
    }
}
