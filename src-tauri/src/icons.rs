//! The tray icons, drawn in code: a coloured disc with a burrow's arched entrance, one colour per
//! state. Drawing them keeps six near-identical PNGs out of the repository and makes the
//! state → colour mapping testable.

/// What the tray icon shows, most important first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrayState {
    /// The helper is not reachable: states are unknown.
    Offline,
    /// A tunnel failed.
    Error,
    /// Connected, but the helper reports it degraded.
    Degraded,
    /// A tunnel is up.
    Connected,
    /// A tunnel is connecting or disconnecting.
    Connecting,
    /// Nothing is up.
    Disconnected,
}

/// Side of the tray icon in pixels.
pub const TRAY_ICON_SIZE: u32 = 32;

/// The disc's colour for `state`, as RGB.
pub fn colour(state: TrayState) -> [u8; 3] {
    match state {
        TrayState::Offline => [0x8a, 0x8a, 0x8a],
        TrayState::Error => [0xd0, 0x43, 0x3b],
        TrayState::Degraded => [0xe0, 0x7b, 0x26],
        TrayState::Connected => [0x2e, 0x9e, 0x5b],
        TrayState::Connecting => [0xe0, 0xa5, 0x26],
        TrayState::Disconnected => [0x5b, 0x67, 0x70],
    }
}

/// The icon for `state`: RGBA bytes, row by row, and its side in pixels.
pub fn tray_icon(state: TrayState) -> (Vec<u8>, u32) {
    let size = TRAY_ICON_SIZE;
    let [r, g, b] = colour(state);
    let centre = size as f32 / 2.0;
    let radius = centre - 1.0;
    let mut rgba = Vec::with_capacity((size * size * 4) as usize);
    for y in 0..size {
        for x in 0..size {
            let (px, py) = (x as f32 + 0.5, y as f32 + 0.5);
            let distance = ((px - centre).powi(2) + (py - centre).powi(2)).sqrt();
            // Anti-aliased edge: full inside, fading over one pixel.
            let coverage = (radius - distance + 0.5).clamp(0.0, 1.0);
            // The burrow: an arch (half disc on a rectangle) in the lower half, light.
            let arch_radius = size as f32 * 0.22;
            let arch_top = centre + 1.0;
            let in_arch =
                (py >= arch_top && py <= size as f32 - 5.0 && (px - centre).abs() <= arch_radius)
                    || ((px - centre).powi(2) + (py - arch_top).powi(2)).sqrt() <= arch_radius;
            let (cr, cg, cb) = if in_arch && coverage > 0.0 {
                (0xf4, 0xef, 0xe6)
            } else {
                (r, g, b)
            };
            rgba.extend_from_slice(&[cr, cg, cb, (coverage * 255.0).round() as u8]);
        }
    }
    (rgba, size)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_state_has_its_own_colour_and_a_round_icon() {
        let states = [
            TrayState::Offline,
            TrayState::Error,
            TrayState::Degraded,
            TrayState::Connected,
            TrayState::Connecting,
            TrayState::Disconnected,
        ];
        let mut colours: Vec<_> = states.iter().map(|s| colour(*s)).collect();
        colours.sort();
        colours.dedup();
        assert_eq!(colours.len(), states.len());
        for state in states {
            let (rgba, size) = tray_icon(state);
            assert_eq!(rgba.len(), (size * size * 4) as usize);
            let pixel = |x: u32, y: u32| {
                let i = ((y * size + x) * 4) as usize;
                [rgba[i], rgba[i + 1], rgba[i + 2], rgba[i + 3]]
            };
            assert_eq!(pixel(0, 0)[3], 0, "corners are transparent");
            let [r, g, b] = colour(state);
            assert_eq!(
                pixel(size / 2, 4),
                [r, g, b, 255],
                "the disc has the state's colour"
            );
            assert_eq!(
                pixel(size / 2, size - 8)[..3],
                [0xf4, 0xef, 0xe6],
                "the burrow"
            );
        }
    }
}
