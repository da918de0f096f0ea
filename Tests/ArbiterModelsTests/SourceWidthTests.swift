// The width DEVELOPERS.md states for the sources: no line of Sources/ over 120 characters.
import Foundation
import Testing

@Suite("Source width")
struct SourceWidthTests {
    @Test("no line of Sources/ is longer than 120 characters")
    func width() throws {
        let sources = Repository.root.appendingPathComponent("Sources")
        var long: [String] = []
        let enumerator = FileManager.default.enumerator(at: sources, includingPropertiesForKeys: nil)
        var files = 0
        while let url = enumerator?.nextObject() as? URL {
            guard ["swift", "c", "h"].contains(url.pathExtension) else { continue }
            files += 1
            let text = try String(contentsOf: url, encoding: .utf8)
            for (n, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated()
            where line.count > 120 {
                long.append("\(url.path.dropFirst(sources.path.count + 1)):\(n + 1) (\(line.count) characters)")
            }
        }
        #expect(files > 100, "only \(files) source files found under \(sources.path)")
        #expect(long.isEmpty, "\(long.count) lines over 120 characters:\n\(long.joined(separator: "\n"))")
    }
}
