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
            out[name] = Self.fingerprint(p)
        }
        return out
    }

    /// "/" for a folder, size and hash for a regular file, the type for anything else (a named pipe is never
    /// opened: reading it would block).
    static func fingerprint(_ path: String) -> String {
        let type = (try? FileManager.default.attributesOfItem(atPath: path))?[.type] as? FileAttributeType
        switch type {
        case .typeDirectory?: return "/"
        case .typeRegular?:
            let data = try? Data(contentsOf: URL(fileURLWithPath: path))
            return data.map { "\($0.count) bytes \($0.hashValue)" } ?? "?"
        case let other?: return other.rawValue
        case nil: return "?"
        }
    }
}

struct CLIResult: CustomStringConvertible {
    let status: Int32
    let signalled: Bool
    let stdout: String
    let stderr: String
    /// Killed at the time limit.
    var timedOut = false
    var description: String {
        let how = (signalled ? " (signal)" : "") + (timedOut ? " (timed out)" : "")
        return "status \(status)\(how); stderr: \(stderr.suffix(600))"
    }
}

/// Limits a subprocess runs under besides its time limit.
struct ResourceLimits: Sendable {
    /// Address space in bytes (`ulimit -v`): an allocation beyond it fails inside the process.
    var addressSpace: Int
    /// Extra environment (e.g. ARBITER_MEMORY_LIMIT_BYTES, so the resource guard refuses before the kernel does).
    var environment: [String: String] = [:]
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
        let r = try execute(arguments, in: directory, timeout: timeout)
        #expect(!r.timedOut, "arbiter \(arguments.joined(separator: " ")) ran over \(timeout) s",
                sourceLocation: sourceLocation)
        return r
    }

    /// Runs `arbiter arguments…` and reports what happened without recording issues (callable from any thread):
    /// killed after `timeout` seconds, under `limits` when given (through `/bin/sh -c 'ulimit -v …; exec …'`).
    static func execute(_ arguments: [String], in directory: URL? = nil, timeout: Double = 120,
                        limits: ResourceLimits? = nil) throws -> CLIResult {
        let process = Process()
        if let limits {
            process.executableURL = URL(fileURLWithPath: "/bin/sh")
            let kibibytes = max(1, limits.addressSpace / 1024)
            process.arguments = ["-c", "ulimit -v \(kibibytes) && exec \"$0\" \"$@\"", executable.path] + arguments
            process.environment = ProcessInfo.processInfo.environment.merging(limits.environment) { $1 }
        } else {
            process.executableURL = executable
            process.arguments = arguments
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
        // Woken by the exit itself (no polling delay: the fuzz suite runs well over a thousand processes).
        let exited = DispatchSemaphore(value: 0)
        process.terminationHandler = { _ in exited.signal() }
        try process.run()
        let timedOut = exited.wait(timeout: .now() + timeout) == .timedOut
        if timedOut { kill(process.processIdentifier, SIGKILL) }
        process.waitUntilExit()
        try out.close()
        try err.close()
        let outData = try Data(contentsOf: outURL), errData = try Data(contentsOf: errURL)
        return CLIResult(status: process.terminationStatus,
                         signalled: process.terminationReason == .uncaughtSignal && !timedOut,
                         stdout: String(decoding: outData, as: UTF8.self),
                         stderr: String(decoding: errData, as: UTF8.self), timedOut: timedOut)
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
