// Fingerprints of content — a model folder's files, a run's samples, a batch of passes — that sharded runs
// compare before they merge, and Arbiter's version, which they compare too.
import Foundation

/// The version of Arbiter (recorded in sharded runs' partial results; partials of other versions never merge).
public enum ArbiterVersion {
    public static let string = "0.12.0"
}

/// A 64-bit fingerprint of values fed in order: a multiply–xorshift over 8-byte words (each fed piece's tail
/// zero-padded), every piece's length mixed in. It tells inputs apart; it is not cryptographic.
public struct ContentFingerprint: Sendable {
    private var h: UInt64 = 0x243F_6A88_85A3_08D3

    public init() {}

    private mutating func mix(_ w: UInt64) {
        h = (h ^ w) &* 0xBF58_476D_1CE4_E5B9
        h ^= h >> 31
    }

    public mutating func add(_ bytes: UnsafeRawBufferPointer) {
        let n = bytes.count
        var i = 0
        while i + 8 <= n {
            mix(bytes.loadUnaligned(fromByteOffset: i, as: UInt64.self))
            i += 8
        }
        if i < n {
            var w: UInt64 = 0
            for k in i..<n { w |= UInt64(bytes[k]) << UInt64(8 * (k - i)) }
            mix(w)
        }
        mix(UInt64(n))
    }

    public mutating func add(_ value: UInt64) { mix(value) }
    public mutating func add(_ value: Int) { mix(UInt64(bitPattern: Int64(value))) }

    public mutating func add(_ string: String) {
        var s = string
        s.withUTF8 { add(UnsafeRawBufferPointer($0)) }
    }

    public mutating func add(_ floats: [Float]) { floats.withUnsafeBytes { add($0) } }
    public mutating func add(_ ints: [Int]) { ints.withUnsafeBytes { add($0) } }

    /// 16 hexadecimal digits.
    public var hex: String {
        var copy = self
        copy.mix(0x9E37_79B9_7F4A_7C15)
        return String(copy.h, radix: 16).leftPadded(to: 16)
    }

    /// The fingerprint of every regular file below `folder` whose name does not start with a dot, in the order
    /// of their relative paths: each path, then its bytes (read in 4 MiB pieces, so a 14 GB checkpoint takes
    /// seconds). Throws `FormatError` naming a file it cannot read.
    public static func folder(_ folder: URL) throws -> String {
        var fingerprint = ContentFingerprint()
        let root = folder.standardizedFileURL
        guard let walker = FileManager.default.enumerator(at: root, includingPropertiesForKeys: [.isRegularFileKey],
                                                          options: [.skipsHiddenFiles]) else {
            throw FormatError(.unreadable, file: root, "cannot list the folder")
        }
        var files: [(String, URL)] = []
        for case let url as URL in walker {
            guard (try? url.resourceValues(forKeys: [.isRegularFileKey]).isRegularFile) == true else { continue }
            let relative = String(url.standardizedFileURL.path.dropFirst(root.path.count))
            files.append((relative, url))
        }
        for (relative, url) in files.sorted(by: { $0.0 < $1.0 }) {
            fingerprint.add(relative)
            guard let handle = try? FileHandle(forReadingFrom: url) else {
                throw FormatError(.unreadable, file: url, "cannot open the file to fingerprint it")
            }
            defer { try? handle.close() }
            while true {
                let piece: Data?
                do { piece = try handle.read(upToCount: 4 << 20) } catch {
                    throw FormatError(.unreadable, file: url, "read failed while fingerprinting: \(error)")
                }
                guard let piece, !piece.isEmpty else { break }
                piece.withUnsafeBytes { fingerprint.add($0) }
            }
        }
        return fingerprint.hex
    }
}

private extension String {
    func leftPadded(to width: Int) -> String { String(repeating: "0", count: max(0, width - count)) + self }
}
