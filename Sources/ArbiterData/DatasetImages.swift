// Dataset images are the files. Every image an item names is resolved inside the set's image folder, bounded by
// its PNG header, read and decoded: when the set is loaded (so `data check`, `eval` and `verify --data` refuse a
// bad image before any model runs) and again when the image is handed to a model (`ConflictSet.image(for:)`).
// An item's scene, when it has one, only checks its file: the scene is drawn again and must equal the decoded
// file pixel for pixel. That check always runs: the sizes are compared first, and drawing is integer work on at
// most `DatasetLimits.maximumImageSide`² pixels (a few milliseconds for the generator's 16–336-pixel images).
// Only a set generated in memory (no image folder) draws its images from the scenes.
import ArbiterFormats
import Foundation

enum DatasetImages {
    /// Why an item's image cannot be used; becomes the item's `DatasetProblem`.
    struct Failure: Error {
        let kind: DatasetProblem.Kind
        let problem: String

        init(_ kind: DatasetProblem.Kind, _ problem: String) {
            self.kind = kind
            self.problem = problem
        }
    }

    /// The folder image paths are relative to: as given (for messages) and with every symlink resolved.
    struct Root {
        let url: URL
        let resolved: String

        init(_ url: URL) throws {
            guard let resolved = DatasetImages.realPath(url.path) else {
                let reason = String(cString: strerror(errno))
                throw Failure(.missingImage, "cannot resolve the image folder \(url.path): \(reason)")
            }
            self.url = url
            self.resolved = resolved
        }

        /// Whether a resolved path is inside the folder (compared on whole path components).
        func contains(_ path: String) -> Bool {
            resolved == "/" ? path.hasPrefix("/") : path.hasPrefix(resolved + "/")
        }
    }

    /// The path with every symlink, `.` and `..` resolved, or nil (with `errno` set) when it cannot be.
    static func realPath(_ path: String) -> String? {
        guard let real = realpath(path, nil) else { return nil }
        defer { free(real) }
        return String(cString: real)
    }

    /// Why `relative` cannot name an image inside a dataset folder (absolute, a `..` component, not `.png`), or nil.
    static func pathProblem(_ relative: String) -> Failure? {
        if relative.hasPrefix("/") {
            return Failure(.invalidValue, "image path '\(relative)' is absolute; it must be relative to the dataset "
                + "folder")
        }
        if relative.split(separator: "/").contains("..") {
            return Failure(.invalidValue, "image path '\(relative)' has a '..' component; it must stay inside the "
                + "dataset folder")
        }
        if !relative.lowercased().hasSuffix(".png") {
            return Failure(.unsupportedImage, "image '\(relative)' is not a PNG file; Arbiter reads PNG only")
        }
        return nil
    }

    /// Resolves `relative` inside `root`, refuses it above the size caps (from the PNG header, before reading the
    /// rest), reads and decodes it; with `scene`, checks that the file is what the scene draws.
    static func read(_ relative: String, in root: Root, scene: Scene?) throws -> RGBImage {
        if let failure = pathProblem(relative) { throw failure }
        let path = root.url.appendingPathComponent(relative).path
        guard let resolved = realPath(path) else {
            let code = errno
            if code == ENOENT || code == ENOTDIR {
                throw Failure(.missingImage, "image file \(path) does not exist (or is a symlink to nothing)")
            }
            throw Failure(.invalidImage, "image file \(path) cannot be resolved: \(String(cString: strerror(code)))")
        }
        guard root.contains(resolved) else {
            throw Failure(.invalidValue, "image file \(path) resolves to \(resolved), outside the dataset folder "
                + "\(root.resolved); symlinks must stay inside it")
        }
        let url = URL(fileURLWithPath: resolved)
        let image: RGBImage
        do {
            let info = try PNGImage.info(url: url)
            let (side, bytes) = (DatasetLimits.maximumImageSide, DatasetLimits.maximumImageFileBytes)
            guard info.width <= side, info.height <= side else {
                throw Failure(.invalidImage, "image file \(path) declares \(info.width)x\(info.height) pixels, over "
                    + "the \(side)-pixel limit per side for dataset images")
            }
            guard info.bytes <= bytes else {
                throw Failure(.invalidImage, "image file \(path) is \(info.bytes) bytes, over the \(bytes)-byte limit "
                    + "for dataset images")
            }
            image = try PNGImage.read(url: url)
        } catch let error as FormatError {
            throw Failure(.invalidImage, "image file \(path): \(error.kind.rawValue): \(error.problem)")
        }
        if let scene { try check(image, drawnFrom: scene, path: path) }
        return image
    }

    /// Throws unless `image` is exactly what `scene` draws.
    static func check(_ image: RGBImage, drawnFrom scene: Scene, path: String) throws {
        if let problem = scene.problem() { throw Failure(.invalidValue, "scene: \(problem)") }
        let size = scene.size
        guard image.width == size, image.height == size else {
            throw Failure(.sceneMismatch, "image file \(path) is \(image.width)x\(image.height) pixels; the item's "
                + "scene draws \(size)x\(size) (write scene null for an image not drawn from a scene)")
        }
        guard image.alpha == nil else {
            throw Failure(.sceneMismatch, "image file \(path) has an alpha channel; the item's scene draws an opaque "
                + "image (write scene null for an image not drawn from a scene)")
        }
        let drawn = Rasterizer.render(scene)
        guard drawn.pixels != image.pixels else { return }
        var differing = 0, first = -1
        for i in 0..<(size * size) where drawn.pixels[(3 * i)..<(3 * i + 3)] != image.pixels[(3 * i)..<(3 * i + 3)] {
            differing += 1
            if first < 0 { first = i }
        }
        throw Failure(.sceneMismatch, "image file \(path) differs from what the item's scene draws at \(differing) of "
            + "\(size * size) pixels (first at x \(first % size), y \(first / size)); write scene null for an image "
            + "not drawn from a scene")
    }
}

extension ConflictSet {
    /// The image `item` shows. With an image folder: its file, checked as at load (inside the folder, within the
    /// size caps, decoded, and equal to the drawing of its scene when it has one). Without one (a set generated in
    /// memory): drawn from the item's scene. Errors are `DatasetError`s naming `source`, the item and the file.
    public func image(for item: ConflictItem) throws -> RGBImage? {
        guard let relative = item.image else { return nil }
        do {
            guard let imageRoot else {
                if let drawn = ConflictGenerator.image(for: item) { return drawn }
                throw DatasetImages.Failure(.missingImage, "the item names image '\(relative)', but the set has no "
                    + "image folder and the item no scene to draw it from")
            }
            return try DatasetImages.read(relative, in: try DatasetImages.Root(imageRoot), scene: item.scene)
        } catch let failure as DatasetImages.Failure {
            let index = positions[item.id] ?? items.firstIndex { $0.id == item.id } ?? -1
            throw DatasetError(file: source, item: DatasetProblem(id: item.id, index: index, kind: failure.kind,
                                                                 problem: failure.problem))
        }
    }
}
