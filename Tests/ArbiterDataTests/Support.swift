// Test support: repository paths, the shared reference data, temporary folders, placeholder images.
import ArbiterData
@testable import ArbiterFormats
import Foundation

enum Repository {
    static let root: URL = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent()
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures")
    static let tinyLlavaTokenizer = root.appendingPathComponent("GoldenData/models/tiny-llava/tokenizer.json")

    /// The paper's data files (`../shared/reference-data/`, outside the repository; the full-file tests are
    /// enabled only where it exists — excerpts in Fixtures/ cover the loaders everywhere).
    static let referenceData = root.deletingLastPathComponent().appendingPathComponent("shared/reference-data")
    static var hasReferenceData: Bool {
        FileManager.default.fileExists(atPath: referenceData.appendingPathComponent("mc2_evaluate_final.json").path)
    }

    static func fixture(_ name: String) -> URL { fixtures.appendingPathComponent(name) }
}

/// A temporary folder removed when the value is deinitialized.
final class TemporaryFolder {
    let url: URL
    init() throws {
        url = FileManager.default.temporaryDirectory.appendingPathComponent("arbiter-data-tests-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    }
    deinit { try? FileManager.default.removeItem(at: url) }

    func file(_ name: String) -> URL { url.appendingPathComponent(name) }

    /// Writes JSON text to `name` and returns its URL.
    func writeJSON(_ text: String, _ name: String) throws -> URL {
        let u = file(name)
        try FileManager.default.createDirectory(at: u.deletingLastPathComponent(), withIntermediateDirectories: true)
        try Data(text.utf8).write(to: u)
        return u
    }
}

/// A 2×2 placeholder PNG.
func placeholderPNG() throws -> Data {
    try PNGImage.encode(RGBImage(width: 2, height: 2, red: 200, green: 100, blue: 50))
}

/// The `image_id`s of a paper or MC² JSON file.
func imageIDs(of url: URL) throws -> [String] {
    let items = try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as? [[String: Any]] ?? []
    return items.compactMap { $0["image_id"] as? String }
}

/// A folder with a placeholder PNG for each image id (named `<id>.png`, or COCO style when `coco`).
func imageFolder(for ids: [String], in folder: TemporaryFolder, coco: Bool = false, jpeg: Bool = false) throws -> URL {
    let images = folder.file("images-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: images, withIntermediateDirectories: true)
    let png = try placeholderPNG()
    for id in Set(ids) {
        let padded = String(repeating: "0", count: max(0, 12 - String(Int(id) ?? 0).count)) + String(Int(id) ?? 0)
        let base = coco ? "COCO_val2014_\(padded)" : id
        try png.write(to: images.appendingPathComponent(base + (jpeg ? ".jpg" : ".png")))
    }
    return images
}

/// Runs `body`, returning the `DatasetError` it throws (nil if it throws nothing or something else).
func datasetError(_ body: () throws -> Void) -> DatasetError? {
    do { try body() } catch let e as DatasetError { return e } catch { return nil }
    return nil
}

/// A PNG whose IHDR (with a correct CRC) declares `width`×`height` 8-bit RGB, followed by a little image data and
/// IEND: a decoder that trusted the header would allocate width × height × 3 bytes.
func pngClaiming(width: UInt32, height: UInt32) -> Data {
    var out = PNGStructure.signature
    let header = PNGStructure.bigEndian(width) + PNGStructure.bigEndian(height) + [8, 2, 0, 0, 0]
    PNGStructure.appendChunk("IHDR", header[...], to: &out)
    PNGStructure.appendChunk("IDAT", [0x78, 0x01, 0x01, 0x04, 0x00, 0xFB, 0xFF, 0, 0, 0, 0][...], to: &out)
    PNGStructure.appendChunk("IEND", [][...], to: &out)
    return Data(out)
}
