// The size caps every dataset loader applies (Arbiter's format, the paper's sets, MC²), checked while loading so
// that an oversized input is a `DatasetError` naming the file, the item and the field, never an allocation abort.
// Each cap is far above what the paper's data needs (its largest set: 2,000 items, 1.2 MB, fields ≤ 942 bytes,
// candidate lists ≤ 11 words, images ≤ 640 pixels a side).
public enum DatasetLimits {
    /// Largest dataset JSON file read. 50,000 items in Arbiter's format (pretty-printed, scene included, about
    /// 1.3 KB each) are 64 MiB; twice that leaves room for longer texts. Parsing holds several times the file.
    public static let maximumFileBytes = 128 << 20

    /// Most items in one file: 25× MC²'s 2,000. Every item costs at least one forward pass, and the analyses
    /// hundreds; a larger set belongs in several files.
    public static let maximumItems = 50_000

    /// Longest string field (id, task, question, context, instruction, constraint, each answer and candidate), in
    /// UTF-8 bytes: 17× the paper's longest context. A field becomes part of a prompt that must fit a model's
    /// context window (about 4,000 tokens for LLaVA-1.5); a 1 MB question used to abort the CLI.
    public static let maximumStringBytes = 16 << 10

    /// Most entries in one candidate list (the paper's have ≤ 11); each candidate is tokenized for every item.
    public static let maximumCandidates = 256

    /// Largest serialized `scene` of one item (the generator's are under 1 KB).
    public static let maximumSceneBytes = 16 << 10

    /// Largest image side, in pixels, of a dataset image, checked from the PNG header before the file is read.
    /// The models here never look at more: CLIP processors resize to 224–336 pixels, Qwen2-VL's default
    /// `max_pixels` (12,845,056) is 3,584² pixels; COCO images are ≤ 640. A 4,096² image decodes to 48 MiB of
    /// RGB (64 MiB of RGBA on the way), so a set of them stays within memory; the PNG decoder's own cap
    /// (`RGBImage.maximumSide`) is 4× larger.
    public static let maximumImageSide = 4096

    /// Largest dataset PNG file: a 4,096² 16-bit RGBA image stored without compression is 128 MiB (plus a filter
    /// byte per row and deflate's 5 bytes per 64 KiB block); 192 MiB leaves room for ancillary chunks.
    public static let maximumImageFileBytes = 192 << 20
}
