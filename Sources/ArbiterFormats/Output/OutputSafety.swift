// Output safety: every writer of Arbiter (reports, datasets, dumps, golden claim files) checks its destination
// before any work starts, and never deletes or overwrites what Arbiter did not create.
//
// A folder output (a verify report, a generated dataset) is written into a staging folder beside the
// destination and renamed into place; an existing destination is replaced only when it is empty or when it is
// an Arbiter output of the same kind — recognised by the marker file `.arbiter-output` (JSON: kind and the list
// of entries Arbiter wrote) — holding nothing else. The current directory and its ancestors, `/`, the home
// directory, symbolic links, the empty string and any folder holding an input (the model, the data) are refused
// whatever they contain.
//
// A file output (an HDF5 dump, a golden claims file) is written to a temporary file and renamed into place
// (HDF5Writer); an existing file is replaced only when it is an HDF5 file whose root attribute
// `arbiter_output` names the same kind.
import Foundation

/// What an Arbiter output is; written into its marker (folders) or its root attribute (HDF5 files).
public enum OutputKind: String, Sendable, CaseIterable {
    case verifyReport = "verify-report"
    case dataset
    case dump
    case goldenClaims = "golden-claims"
    /// A folder of sharded runs' partial results, which every shard adds its files to (`addingFiles`).
    case shardPartials = "shard-partials"
}

/// A refused or failed output: which option, which path, and why.
public struct OutputError: Error, CustomStringConvertible, Equatable, Sendable {
    public let option: String
    public let path: String
    public let problem: String

    public init(option: String, path: String, _ problem: String) {
        self.option = option
        self.path = path
        self.problem = problem
    }

    public var description: String {
        "\(option) \(path.isEmpty ? "\"\"" : path): \(problem)"
    }
}

extension OutputError: LocalizedError {
    public var errorDescription: String? { description }
}

/// The marker file of a folder Arbiter wrote: its kind and every entry (relative path) it holds.
public struct OutputMarker: Codable, Equatable, Sendable {
    public static let fileName = ".arbiter-output"
    /// The root attribute that marks an HDF5 file Arbiter wrote.
    public static let attributeName = "arbiter_output"

    public let kind: String
    public let entries: [String]

    public init(kind: OutputKind, entries: [String]) {
        self.kind = kind.rawValue
        self.entries = entries.sorted()
    }
}

public enum OutputSafety {
    /// Paths that are never an output, whatever they hold: `/`, the home directory, the current directory and
    /// its ancestors.
    static func forbiddenReason(_ resolved: String) -> String? {
        if resolved == "/" { return "is the root folder" }
        let home = canonical(ProcessInfo.processInfo.environment["HOME"] ?? NSHomeDirectory())
        if resolved == home { return "is the home folder" }
        let cwd = canonical(FileManager.default.currentDirectoryPath)
        if resolved == cwd { return "is the current folder" }
        if isAncestor(resolved, of: cwd) { return "holds the current folder" }
        return nil
    }

    /// `path` absolute, standardised, with symbolic links of its existing part resolved.
    static func canonical(_ path: String) -> String {
        let absolute = path.hasPrefix("/") ? path : FileManager.default.currentDirectoryPath + "/" + path
        return URL(fileURLWithPath: absolute).standardizedFileURL.resolvingSymlinksInPath().path
    }

    /// Whether folder `a` strictly contains `b` (on path-component boundaries).
    static func isAncestor(_ a: String, of b: String) -> Bool {
        let prefix = a.hasSuffix("/") ? a : a + "/"
        return b.hasPrefix(prefix)
    }

    /// Common checks of a destination: not empty, not a symbolic link, not a forbidden folder, not holding or
    /// being an input. Returns the destination as a URL (standardised, not resolved).
    static func checkCommon(_ path: String, option: String, inputs: [URL]) throws -> URL {
        func refuse(_ problem: String) -> OutputError { OutputError(option: option, path: path, problem) }
        guard !path.isEmpty else { throw refuse("is empty; give a folder or file name") }
        guard !path.utf8.contains(0) else { throw refuse("contains a NUL byte") }
        let absolute = path.hasPrefix("/") ? path : FileManager.default.currentDirectoryPath + "/" + path
        let url = URL(fileURLWithPath: absolute).standardizedFileURL
        var info = stat()
        if lstat(url.path, &info) == 0, (info.st_mode & S_IFMT) == S_IFLNK {
            throw refuse("is a symbolic link; give the path it points to, if that is what you mean")
        }
        let resolved = canonical(url.path)
        if let reason = forbiddenReason(resolved) { throw refuse("\(reason); Arbiter never replaces it") }
        for input in inputs {
            let source = canonical(input.path)
            if resolved == source { throw refuse("is an input of this run (\(input.path))") }
            if isAncestor(resolved, of: source) { throw refuse("holds an input of this run (\(input.path))") }
        }
        return url
    }

    // MARK: Folders

    /// Checks that a folder output of `kind` may be written at `path` (before any work starts). `inputs` are
    /// the run's input files and folders.
    @discardableResult
    public static func checkFolder(_ path: String, kind: OutputKind, option: String, inputs: [URL] = []) throws -> URL {
        let url = try checkCommon(path, option: option, inputs: inputs)
        func refuse(_ problem: String) -> OutputError { OutputError(option: option, path: path, problem) }
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: url.path, isDirectory: &isDirectory) else {
            var parent = url.deletingLastPathComponent()
            while !FileManager.default.fileExists(atPath: parent.path, isDirectory: &isDirectory) {
                parent = parent.deletingLastPathComponent()
            }
            guard isDirectory.boolValue else { throw refuse("\(parent.path) is a file, not a folder") }
            guard FileManager.default.isWritableFile(atPath: parent.path) else {
                throw refuse("cannot create it: \(parent.path) is not writable")
            }
            return url
        }
        guard isDirectory.boolValue else { throw refuse("is a file, not a folder; Arbiter never replaces it") }
        let contents = try listing(url, refuse: refuse)
        if contents.isEmpty { return url }
        let marker = try readMarker(url, kind: kind, refuse: refuse)
        let known = Set(marker.entries + [OutputMarker.fileName])
        if let stranger = contents.first(where: { !known.contains($0) }) {
            throw refuse("holds '\(stranger)', which Arbiter did not write there; move it away or choose "
                         + "another folder")
        }
        let parent = url.deletingLastPathComponent()
        guard FileManager.default.isWritableFile(atPath: parent.path) else {
            throw refuse("cannot replace it: \(parent.path) is not writable")
        }
        return url
    }

    /// The marker of a non-empty folder, which must be Arbiter's of `kind`.
    static func readMarker(_ folder: URL, kind: OutputKind, refuse: (String) -> OutputError) throws -> OutputMarker {
        guard let data = try? Data(contentsOf: folder.appendingPathComponent(OutputMarker.fileName)),
              let marker = try? JSONDecoder().decode(OutputMarker.self, from: data) else {
            throw refuse("is a folder Arbiter did not write (no readable \(OutputMarker.fileName) marker) and it is "
                         + "not empty; choose a new or empty folder")
        }
        guard marker.kind == kind.rawValue else {
            throw refuse("is an Arbiter \(marker.kind) folder, not a \(kind.rawValue); choose another folder")
        }
        return marker
    }

    /// Every entry below `folder` as a relative path (folders too), sorted; never follows symbolic links.
    static func listing(_ folder: URL, refuse: (String) -> OutputError) throws -> [String] {
        var out: [String] = []
        func walk(_ relative: String) throws {
            let here = relative.isEmpty ? folder.path : folder.path + "/" + relative
            let names: [String]
            do { names = try FileManager.default.contentsOfDirectory(atPath: here) } catch {
                throw refuse("cannot list \(here): \(error.localizedDescription)")
            }
            for name in names.sorted() {
                let child = relative.isEmpty ? name : relative + "/" + name
                out.append(child)
                var info = stat()
                if lstat(folder.path + "/" + child, &info) == 0, (info.st_mode & S_IFMT) == S_IFDIR { try walk(child) }
            }
        }
        try walk("")
        return out
    }

    /// Writes a folder output: `body` fills a staging folder beside the destination; the marker is added and the
    /// staging folder renamed into place, replacing the previous output only after the checks of `checkFolder`
    /// pass again. Nothing appears under the final name unless everything was written.
    public static func writeFolder(_ path: String, kind: OutputKind, option: String, inputs: [URL] = [],
                                   _ body: (URL) throws -> Void) throws {
        let url = try checkFolder(path, kind: kind, option: option, inputs: inputs)
        func refuse(_ problem: String) -> OutputError { OutputError(option: option, path: path, problem) }
        let fm = FileManager.default
        let parent = url.deletingLastPathComponent()
        do { try fm.createDirectory(at: parent, withIntermediateDirectories: true) } catch {
            throw refuse("cannot create \(parent.path): \(error.localizedDescription)")
        }
        let staging = parent.appendingPathComponent(".\(url.lastPathComponent).partial-\(UUID().uuidString)")
        do { try fm.createDirectory(at: staging, withIntermediateDirectories: false) } catch {
            throw refuse("cannot create the staging folder \(staging.path): \(error.localizedDescription)")
        }
        do {
            try body(staging)
            let entries = try listing(staging, refuse: refuse)
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys]   // the same output twice gives the same bytes
            let marker = try encoder.encode(OutputMarker(kind: kind, entries: entries))
            try marker.write(to: staging.appendingPathComponent(OutputMarker.fileName))
            // Checked again: the destination may have changed while the work ran.
            _ = try checkFolder(path, kind: kind, option: option, inputs: inputs)
            if fm.fileExists(atPath: url.path) {
                let old = parent.appendingPathComponent(".\(url.lastPathComponent).old-\(UUID().uuidString)")
                try fm.moveItem(at: url, to: old)
                do { try fm.moveItem(at: staging, to: url) } catch {
                    try? fm.moveItem(at: old, to: url)
                    throw error
                }
                try? fm.removeItem(at: old)
            } else {
                try fm.moveItem(at: staging, to: url)
            }
        } catch {
            try? fm.removeItem(at: staging)
            if error is OutputError { throw error }
            throw refuse("cannot write: \(error.localizedDescription)")
        }
    }

    // MARK: Folders that grow

    /// Prepares a folder that Arbiter adds files to one at a time (the partial results of sharded runs, written by
    /// several processes at once): created with its marker when it does not exist or is empty; otherwise it must
    /// carry the marker of `kind` and hold nothing but the marker, files `isOurs` accepts and unfinished
    /// temporary files (`.tmp-*`). Returns the folder.
    @discardableResult
    public static func prepareGrowingFolder(_ path: String, kind: OutputKind, option: String, inputs: [URL] = [],
                                            isOurs: (String) -> Bool) throws -> URL {
        let url = try checkCommon(path, option: option, inputs: inputs)
        func refuse(_ problem: String) -> OutputError { OutputError(option: option, path: path, problem) }
        let fm = FileManager.default
        var isDirectory: ObjCBool = false
        if !fm.fileExists(atPath: url.path, isDirectory: &isDirectory) {
            do { try fm.createDirectory(at: url, withIntermediateDirectories: true) } catch {
                // Another shard may have created it in between.
                guard fm.fileExists(atPath: url.path, isDirectory: &isDirectory) else {
                    throw refuse("cannot create it: \(error.localizedDescription)")
                }
            }
            isDirectory = true
        }
        guard isDirectory.boolValue else { throw refuse("is a file, not a folder; Arbiter never replaces it") }
        let markerURL = url.appendingPathComponent(OutputMarker.fileName)
        let contents = try listing(url, refuse: refuse)
        if contents.filter({ !$0.hasPrefix(".tmp-") }).isEmpty {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys]
            let marker = try encoder.encode(OutputMarker(kind: kind, entries: []))
            // Linked into place: never replaces a marker another shard wrote at the same moment.
            _ = try? writeNew(marker, to: markerURL)
        }
        _ = try readMarker(url, kind: kind, refuse: refuse)
        if let stranger = try listing(url, refuse: refuse).first(where: {
            $0 != OutputMarker.fileName && !$0.hasPrefix(".tmp-") && !isOurs($0)
        }) {
            throw refuse("holds '\(stranger)', which Arbiter did not write there; move it away or choose another "
                         + "folder")
        }
        return url
    }

    /// Writes `data` to the new file `url` atomically, never replacing anything: written to a temporary file in
    /// the same folder, then hard-linked to its name (which fails when the name exists) and the temporary name
    /// removed. Throws an `OutputError` naming the file when it exists or cannot be written.
    public static func writeNew(_ data: Data, to url: URL, option: String = "output") throws {
        let temporary = url.deletingLastPathComponent().appendingPathComponent(".tmp-\(UUID().uuidString)")
        func refuse(_ problem: String) -> OutputError { OutputError(option: option, path: url.path, problem) }
        do { try data.write(to: temporary) } catch {
            try? FileManager.default.removeItem(at: temporary)
            throw refuse("cannot write: \(error.localizedDescription)")
        }
        defer { unlink(temporary.path) }
        guard link(temporary.path, url.path) == 0 else {
            let code = errno
            throw refuse(code == EEXIST ? "exists already; Arbiter never replaces it"
                         : "cannot write: \(String(cString: strerror(code)))")
        }
    }

    // MARK: Files

    /// Checks that an HDF5 file output of `kind` may be written at `path` (before any work starts): it does not
    /// exist, or it is an HDF5 file Arbiter wrote as the same kind. The folder it goes in must exist unless
    /// `createFolder` (then no part of the path may be a file).
    @discardableResult
    public static func checkFile(_ path: String, kind: OutputKind, option: String, inputs: [URL] = [],
                                 createFolder: Bool = false) throws -> URL {
        let url = try checkCommon(path, option: option, inputs: inputs)
        func refuse(_ problem: String) -> OutputError { OutputError(option: option, path: path, problem) }
        let fm = FileManager.default
        var isDirectory: ObjCBool = false
        let folder = url.deletingLastPathComponent()
        if fm.fileExists(atPath: folder.path, isDirectory: &isDirectory) {
            guard isDirectory.boolValue else { throw refuse("\(folder.path) is a file, not a folder") }
        } else if !createFolder {
            throw refuse("folder \(folder.path) does not exist")
        }
        guard fm.fileExists(atPath: url.path, isDirectory: &isDirectory) else { return url }
        guard !isDirectory.boolValue else { throw refuse("is a folder; give a file name") }
        var info = stat()
        guard stat(url.path, &info) == 0, (info.st_mode & S_IFMT) == S_IFREG else {
            throw refuse("is not a regular file; Arbiter never replaces it")
        }
        let written: String?
        do {
            let reader = try HDF5Reader(url: url)
            written = reader.hasAttribute(OutputMarker.attributeName)
                ? try reader.stringAttribute(OutputMarker.attributeName) : nil
        } catch {
            throw refuse("exists and is not an HDF5 file Arbiter wrote; Arbiter never overwrites it")
        }
        guard let written else {
            throw refuse("exists and was not written by Arbiter (no '\(OutputMarker.attributeName)' attribute); "
                         + "Arbiter never overwrites it — delete it yourself or choose another name")
        }
        guard written == kind.rawValue else {
            throw refuse("is an Arbiter \(written) file, not a \(kind.rawValue); choose another name")
        }
        return url
    }
}
