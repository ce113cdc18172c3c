//! The reader on a Raspberry Pi: spidev through rppal, and a GPIO line for the reset pin.

use embedded_hal::spi::{ErrorType, Operation, SpiDevice};
use rppal::gpio::Gpio;
use rppal::spi::{Bus, Mode, Segment, SlaveSelect, Spi};

use super::{Mfrc522Reader, Mfrc522Settings, ThreadSleep, unavailable};
use crate::hw::HwError;

const GROUPS_FIX: &str = "add the user to the spi and gpio groups: sudo usermod -aG spi,gpio $USER (then log in again)";

impl Mfrc522Reader {
    /// The MFRC522 on `/dev/spidev<spi_bus>.<chip_select>` with its reset pin on BCM
    /// `reset_pin`, as `settings` say.
    pub fn open_pi(settings: &Mfrc522Settings) -> Result<Self, HwError> {
        let Mfrc522Settings { spi_bus: bus, chip_select, reset_pin, clock_hz, .. } = *settings;
        // GPIO first: it is what tells a Pi from any other machine.
        let reset = Gpio::new()
            .and_then(|gpio| gpio.get(reset_pin))
            .map_err(|e| gpio_unavailable(reset_pin, e))?
            .into_output_high();
        let spi = Spi::new(spi_bus(bus)?, slave_select(chip_select)?, clock_hz, Mode::Mode0)
            .map_err(|e| spi_unavailable(bus, chip_select, e))?;
        Self::new(SpidevDevice(spi), reset, ThreadSleep, *settings)
    }
}

fn spi_bus(bus: u8) -> Result<Bus, HwError> {
    Ok(match bus {
        0 => Bus::Spi0,
        1 => Bus::Spi1,
        2 => Bus::Spi2,
        3 => Bus::Spi3,
        4 => Bus::Spi4,
        5 => Bus::Spi5,
        6 => Bus::Spi6,
        _ => return Err(unavailable(format!("there is no SPI bus {bus}: the Pi has buses 0 to 6"))),
    })
}

fn slave_select(chip_select: u8) -> Result<SlaveSelect, HwError> {
    const ALL: [SlaveSelect; 16] = [
        SlaveSelect::Ss0,
        SlaveSelect::Ss1,
        SlaveSelect::Ss2,
        SlaveSelect::Ss3,
        SlaveSelect::Ss4,
        SlaveSelect::Ss5,
        SlaveSelect::Ss6,
        SlaveSelect::Ss7,
        SlaveSelect::Ss8,
        SlaveSelect::Ss9,
        SlaveSelect::Ss10,
        SlaveSelect::Ss11,
        SlaveSelect::Ss12,
        SlaveSelect::Ss13,
        SlaveSelect::Ss14,
        SlaveSelect::Ss15,
    ];
    ALL.get(usize::from(chip_select))
        .copied()
        .ok_or_else(|| unavailable(format!("there is no SPI chip select {chip_select}: use 0 (CE0) or 1 (CE1)")))
}

fn gpio_unavailable(reset_bcm: u8, error: rppal::gpio::Error) -> HwError {
    use rppal::gpio::Error;
    unavailable(match error {
        Error::UnknownModel => "this is not a Raspberry Pi (rppal: Unknown Raspberry Pi model)".to_owned(),
        Error::PermissionDenied(path) => format!("permission denied on {path}: {GROUPS_FIX}"),
        Error::PinUsed(pin) => format!("BCM {pin}, the reset pin, is already used by another output"),
        Error::PinNotAvailable(pin) => format!("BCM {pin} does not exist on this Pi (reset pin)"),
        other => format!("cannot use BCM {reset_bcm} for the reset pin: {other}"),
    })
}

fn spi_unavailable(bus: u8, chip_select: u8, error: rppal::spi::Error) -> HwError {
    let device = format!("/dev/spidev{bus}.{chip_select}");
    unavailable(match error {
        rppal::spi::Error::Io(e) if e.kind() == std::io::ErrorKind::NotFound => format!(
            "{device} is missing, so SPI is not enabled: run `sudo raspi-config nonint do_spi 0` \
             (or add dtparam=spi=on to /boot/firmware/config.txt) and reboot"
        ),
        rppal::spi::Error::Io(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
            format!("permission denied on {device}: {GROUPS_FIX}")
        }
        other => format!("cannot open {device}: {other}"),
    })
}

/// `SpiDevice` over spidev, chip select handled by the kernel. rppal 0.22.1 has
/// `SimpleHalSpiDevice` for this, but it clocks out zeros for `TransferInPlace`, which is how the
/// `mfrc522` crate sends a register address to read: every read would reach register 0 instead.
struct SpidevDevice(Spi);

impl ErrorType for SpidevDevice {
    type Error = rppal::spi::Error;
}

impl SpiDevice for SpidevDevice {
    fn transaction(&mut self, operations: &mut [Operation<'_, u8>]) -> Result<(), Self::Error> {
        // The kernel wants separate buffers for what goes out and what comes in.
        let outgoing: Vec<Vec<u8>> = operations
            .iter()
            .map(|op| match op {
                Operation::TransferInPlace(words) => words.to_vec(),
                Operation::Transfer(read, write) if write.len() < read.len() => {
                    let mut padded = write.to_vec();
                    padded.resize(read.len(), 0);
                    padded
                }
                _ => Vec::new(),
            })
            .collect();
        let mut segments = Vec::with_capacity(operations.len());
        for (op, out) in operations.iter_mut().zip(&outgoing) {
            match op {
                Operation::Read(words) => segments.push(Segment::with_read(words)),
                Operation::Write(words) => segments.push(Segment::with_write(words)),
                Operation::Transfer(read, write) => {
                    if write.len() > read.len() {
                        let (both, rest) = write.split_at(read.len());
                        segments.push(Segment::new(read, both));
                        segments.push(Segment::with_write(rest));
                    } else if write.len() == read.len() {
                        segments.push(Segment::new(read, write));
                    } else {
                        segments.push(Segment::new(read, out));
                    }
                }
                Operation::TransferInPlace(words) => segments.push(Segment::new(words, out)),
                Operation::DelayNs(ns) => {
                    let micros = u16::try_from(ns.div_ceil(1000)).unwrap_or(u16::MAX);
                    segments.push(Segment::with_settings(None, None, 0, micros, 0, false));
                }
            }
        }
        self.0.transfer_segments(&segments)
    }
}

#[cfg(test)]
mod tests {
    use std::io;

    use super::*;

    #[test]
    fn errors_say_how_to_fix_them() {
        let not_a_pi = gpio_unavailable(25, rppal::gpio::Error::UnknownModel).to_string();
        assert!(not_a_pi.contains("this is not a Raspberry Pi"), "{not_a_pi}");

        let no_spi = spi_unavailable(0, 0, rppal::spi::Error::Io(io::ErrorKind::NotFound.into())).to_string();
        assert!(no_spi.contains("/dev/spidev0.0 is missing"), "{no_spi}");
        assert!(no_spi.contains("sudo raspi-config nonint do_spi 0"), "{no_spi}");
        assert!(no_spi.contains("dtparam=spi=on"), "{no_spi}");

        let denied = spi_unavailable(0, 1, rppal::spi::Error::Io(io::ErrorKind::PermissionDenied.into())).to_string();
        assert!(denied.contains("/dev/spidev0.1"), "{denied}");
        assert!(denied.contains("sudo usermod -aG spi,gpio $USER"), "{denied}");
        let denied = gpio_unavailable(25, rppal::gpio::Error::PermissionDenied("/dev/gpiomem".into())).to_string();
        assert!(denied.contains("sudo usermod -aG spi,gpio $USER"), "{denied}");

        assert!(spi_bus(7).is_err() && slave_select(16).is_err());
        assert_eq!(slave_select(1).unwrap(), SlaveSelect::Ss1);
    }
}
