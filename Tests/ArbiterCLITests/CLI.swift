// Runs the `arbiter` executable built beside the test bundle as a subprocess, with a time limit, and collects
// what it printed, its exit status and whether a signal ended it.
import Foundation
import Testing

enum Repository {
    /// The package root (two levels above this file's folder).
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent()
    static func model(_ id: String) -> URL { root.appendingPathComponent("GoldenData/models/\(id)") }
}

/// A temporary folder removed when the value is deinitialized.
final class TemporaryFolder {
    let url: URL
    init() throws {
        url = FileManager.default.temporaryDirectory.appendingPathComponent("arbiter-cli-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    }
    deinit { try? FileManager.default.removeItem(at: url) }

    func path(_ name: String) -> String { url.appendingPathComponent(name).path }

    /// Writes a user's file (`contents` defaults to its own name).
    @discardableResult
    func plant(_ name: String, _ contents: String? = nil) throws -> URL {
        let file = url.appendingPathComponent(name)
        try FileManager.default.createDirectory(at: file.deletingLastPathComponent(), withIntermediateDirectories: true)
        try Data((contents ?? "user file \(name)").utf8).write(to: file)
        return file
    }

    /// Every entry below the folder with its contents (files) or "/" (folders): a snapshot to compare.
    func snapshot() throws -> [String: String] {
        var out: [String: String] = [:]
        let e = FileManager.default.enumerator(atPath: url.path)
        while let name = e?.nextObject() as? String {
            let p = url.appendingPathComponent(name).path
            var isDirectory: ObjCBool = false
            FileManager.default.fileExists(atPath: p, isDirectory: &isDirectory)
            out[name] = isDirectory.boolValue ? "/" : (try? Data(contentsOf: URL(fileURLWithPath: p)))
                .map { "\($0.count) bytes \($0.hashValue)" } ?? "?"
        }
        return out
    }
}

struct CLIResult: CustomStringConvertible {
    let status: Int32
    let signalled: Bool
    let stdout: String
    let stderr: String
    var description: String { "status \(status)\(signalled ? " (signal)" : ""); stderr: \(stderr.suffix(600))" }
}

enum CLI {
    /// The `arbiter` executable built beside the test bundle (`make test` builds it first).
    static var executable: URL {
        URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("arbiter")
    }

    /// Runs `arbiter arguments…` in `directory`, killed after `timeout` seconds (a hang is a failure).
    static func run(_ arguments: [String], in directory: URL? = nil, timeout: Double = 120,
                    sourceLocation: SourceLocation = #_sourceLocation) throws -> CLIResult {
        try #require(FileManager.default.isExecutableFile(atPath: executable.path),
                     "no arbiter executable at \(executable.path): build it first (make test does)",
                     sourceLocation: sourceLocation)
        return try Subprocess.run(executable, arguments, in: directory, timeout: timeout,
                                  sourceLocation: sourceLocation)
    }

    /// Runs and expects a clean refusal: a nonzero exit without a signal, and `fragments` in the message.
    @discardableResult
    static func refuses(_ arguments: [String], in directory: URL? = nil, _ fragments: String...,
                        sourceLocation: SourceLocation = #_sourceLocation) throws -> CLIResult {
        let r = try run(arguments, in: directory, sourceLocation: sourceLocation)
        #expect(r.status != 0 && !r.signalled, "\(arguments): \(r)", sourceLocation: sourceLocation)
        for fragment in fragments {
            #expect(r.stderr.contains(fragment), "\(arguments): want '\(fragment)' in: \(r)", sourceLocation: sourceLocation)
        }
        return r
    }
}

enum Subprocess {
    /// Runs `executable arguments…` in `directory` (with `environment` added to this process's), killed after
    /// `timeout` seconds (a hang is a failure).
    static func run(_ executable: URL, _ arguments: [String], in directory: URL? = nil,
                    environment: [String: String] = [:], timeout: Double = 120,
                    sourceLocation: SourceLocation = #_sourceLocation) throws -> CLIResult {
        let process = Process()
        process.executableURL = executable
        process.arguments = arguments
        if !environment.isEmpty {
            process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        }
        if let directory { process.currentDirectoryURL = directory }
        // Output goes to files (no pipe can fill up and block the process).
        let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("arbiter-cli-out-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: scratch, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: scratch) }
        let outURL = scratch.appendingPathComponent("stdout"), errURL = scratch.appendingPathComponent("stderr")
        FileManager.default.createFile(atPath: outURL.path, contents: nil)
        FileManager.default.createFile(atPath: errURL.path, contents: nil)
        let out = try FileHandle(forWritingTo: outURL), err = try FileHandle(forWritingTo: errURL)
        process.standardOutput = out
        process.standardError = err
        process.standardInput = FileHandle.nullDevice
        try process.run()
        let deadline = Date().addingTimeInterval(timeout)
        while process.isRunning && Date() < deadline { usleep(20_000) }
        let timedOut = process.isRunning
        if timedOut { process.terminate() }
        process.waitUntilExit()
        try out.close()
        try err.close()
        let outData = try Data(contentsOf: outURL), errData = try Data(contentsOf: errURL)
        #expect(!timedOut, "\(executable.lastPathComponent) \(arguments.joined(separator: " ")) ran over \(timeout) s",
                sourceLocation: sourceLocation)
        return CLIResult(status: process.terminationStatus, signalled: process.terminationReason == .uncaughtSignal,
                         stdout: String(decoding: outData, as: UTF8.self), stderr: String(decoding: errData, as: UTF8.self))
    }
}
