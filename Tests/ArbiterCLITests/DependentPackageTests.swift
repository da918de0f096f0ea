// Arbiter as a dependency of someone else's package: a package in a temporary folder that depends on Arbiter
// by path builds (SwiftPM refuses unsafe flags in dependencies, so this fails if any target uses them) and runs
// the README's Swift example, taken from README.md itself so that the example cannot rot.
import Foundation
import Testing

@Suite("Arbiter as a dependency")
struct DependentPackageTests {
    /// The first ```swift block of README.md.
    static func readmeExample() throws -> String {
        let readme = try String(contentsOf: Repository.root.appendingPathComponent("README.md"), encoding: .utf8)
        let start = try #require(readme.range(of: "```swift\n"), "README.md has no ```swift example")
        let end = try #require(readme.range(of: "```", range: start.upperBound..<readme.endIndex))
        return String(readme[start.upperBound..<end.lowerBound])
    }

    @Test("a package depending on Arbiter by path builds and runs the README example", .timeLimit(.minutes(20)))
    func dependent() throws {
        let folder = try TemporaryFolder()
        let package = folder.url.appendingPathComponent("Researcher")
        let sources = package.appendingPathComponent("Sources/Researcher")
        try FileManager.default.createDirectory(at: sources, withIntermediateDirectories: true)
        try """
        // swift-tools-version: 6.1
        import PackageDescription
        let package = Package(
            name: "Researcher",
            dependencies: [.package(path: "\(Repository.root.path)")],
            targets: [.executableTarget(name: "Researcher", dependencies: [
                .product(name: "Arbiter", package: "\(Repository.root.lastPathComponent)"),
            ])]
        )
        """.write(to: package.appendingPathComponent("Package.swift"), atomically: true, encoding: .utf8)
        // The example, then a line showing it ran (`out` is the example's forward output).
        try """
        import Arbiter
        import Foundation

        \(try Self.readmeExample())
        print("logits", out.logits?.shape ?? [], "patterns", hooks.cache.keys.sorted())
        """.write(to: sources.appendingPathComponent("main.swift"), atomically: true, encoding: .utf8)

        let log = folder.url.appendingPathComponent("log.txt"), errors = folder.url.appendingPathComponent("errors.txt")
        // The example's model path is relative to the repository: run from there.
        let r = try Subprocess.run("/usr/bin/env", ["swift", "run", "--package-path", package.path, "--scratch-path",
                                                    folder.url.appendingPathComponent(".build").path, "Researcher"],
                                   in: Repository.root, stdout: log, stderr: errors, timeout: 1100)
        let output = try String(contentsOf: log, encoding: .utf8) + String(contentsOf: errors, encoding: .utf8)
        #expect(r.status == 0 && !r.timedOut, "swift run failed:\n\(output.suffix(3000))")
        #expect(output.contains("logits [3, "), "\(output.suffix(1000))")
        #expect(output.contains("blocks.0.attn.hook_pattern"), "\(output.suffix(1000))")
    }
}
