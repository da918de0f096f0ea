// Scenes and the rasteriser: objects (shape, colour, integer centre and radius) on a plain or noisy background,
// drawn into an `RGBImage` with integer arithmetic only (no anti-aliasing), so a scene gives the same bytes
// everywhere. A scene is stored with its item, so images can be re-rendered from dataset.json.
import ArbiterFormats

/// One object: a filled shape centred on pixel (`x`, `y`) with radius `r` pixels (its extent is
/// `x - r ... x + r`, `y - r ... y + r`).
public struct SceneObject: Codable, Sendable, Equatable {
    public var shape: Shape
    public var color: String
    public var x: Int
    public var y: Int
    public var r: Int

    public init(shape: Shape, color: String, x: Int, y: Int, r: Int) {
        self.shape = shape
        self.color = color
        self.x = x
        self.y = y
        self.r = r
    }

    /// Whether pixel offset (`dx`, `dy`) from the centre is inside the shape.
    public func contains(dx: Int, dy: Int) -> Bool {
        let ax = abs(dx), ay = abs(dy)
        guard ax <= r, ay <= r else { return false }
        switch shape {
        case .circle: return dx * dx + dy * dy <= r * r + r
        case .square: return 5 * ax <= 4 * r && 5 * ay <= 4 * r
        case .triangle: return 2 * ax <= dy + r          // apex at the top, base on the bottom row
        case .diamond: return ax + ay <= r
        case .cross:
            let arm = max(1, r / 3)
            return ax <= arm || ay <= arm
        }
    }
}

/// What an image shows.
public struct Scene: Codable, Sendable, Equatable {
    public var size: Int
    /// A name from `Vocabulary.backgrounds`.
    public var background: String
    /// Per-channel noise amplitude (0: plain).
    public var noise: Int
    /// Seed of the background noise (kept below 2^31 so every JSON reader holds it exactly).
    public var noiseSeed: Int
    public var objects: [SceneObject]

    enum CodingKeys: String, CodingKey {
        case size, background, noise, objects
        case noiseSeed = "noise_seed"
    }

    public init(size: Int, background: String, noise: Int, noiseSeed: Int, objects: [SceneObject]) {
        self.size = size
        self.background = background
        self.noise = noise
        self.noiseSeed = noiseSeed
        self.objects = objects
    }

    /// Most objects in one scene: the generator draws at most 4; each costs up to `size`² pixel tests to draw.
    public static let maximumObjects = 16

    /// Problems that would make the scene undrawable (unknown names, objects out of the image), or nil.
    public func problem() -> String? {
        guard (1...RGBImage.maximumSide).contains(size) else { return "scene size \(size) is out of range" }
        guard Vocabulary.background(named: background) != nil else { return "unknown background '\(background)'" }
        guard (0...64).contains(noise) else { return "noise amplitude \(noise) is outside 0...64" }
        guard noiseSeed >= 0 else { return "negative noise_seed" }
        guard objects.count <= Scene.maximumObjects else {
            return "\(objects.count) objects, over the limit of \(Scene.maximumObjects)"
        }
        for (i, o) in objects.enumerated() {
            guard Vocabulary.color(named: o.color) != nil else { return "object \(i): unknown colour '\(o.color)'" }
            // Compared without sums, so that coordinates near Int.max cannot overflow.
            guard o.r >= 1, o.r < size, o.x >= o.r, o.y >= o.r, o.x < size - o.r, o.y < size - o.r else {
                return "object \(i) (centre \(o.x),\(o.y), radius \(o.r)) does not fit in \(size)x\(size)"
            }
        }
        return nil
    }
}

public enum Rasterizer {
    /// Draws `scene` (which must satisfy `scene.problem() == nil`).
    public static func render(_ scene: Scene) -> RGBImage {
        let n = scene.size
        let bg = Vocabulary.background(named: scene.background) ?? (255, 255, 255)
        var pixels = [UInt8](repeating: 0, count: n * n * 3)
        var random = SeededRandom(seed: UInt64(scene.noiseSeed))
        let base = [Int(bg.0), Int(bg.1), Int(bg.2)]
        for i in 0..<(n * n) {
            for c in 0..<3 {
                var v = base[c]
                if scene.noise > 0 { v += random.int(in: -scene.noise...scene.noise) }
                pixels[3 * i + c] = UInt8(clamping: v)
            }
        }
        for object in scene.objects {
            guard let color = Vocabulary.color(named: object.color) else { continue }
            let rgb = color.rgb
            for y in max(0, object.y - object.r)...min(n - 1, object.y + object.r) {
                for x in max(0, object.x - object.r)...min(n - 1, object.x + object.r)
                where object.contains(dx: x - object.x, dy: y - object.y) {
                    let i = 3 * (y * n + x)
                    pixels[i] = rgb.0; pixels[i + 1] = rgb.1; pixels[i + 2] = rgb.2
                }
            }
        }
        return RGBImage(width: n, height: n, pixels: pixels)
    }
}
