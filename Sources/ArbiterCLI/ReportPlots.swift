// Plots of the verify report (filled in with ArbiterPlots).
import ArbiterAnalyses
import ArbiterClaims
import Foundation

enum ReportPlots {
    /// Writes the report's PNGs into `folder`; returns (relative path, caption) pairs.
    static func write(_ all: [VerifyReport.Entry], to folder: URL) throws -> [(String, String)] {
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        return []
    }
}
