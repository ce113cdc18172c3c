//! A model of the MFRC522 at the SPI level, with ISO 14443-A cards in its field, for running the
//! real `mfrc522` crate and our reader off the Pi. It keeps the registers the driver uses, the
//! FIFO, the CRC coprocessor and Transceive; cards answer REQA/WUPA, anticollision, SELECT and
//! HLTA bit by bit, so several cards in the field collide the way they do on air.
//!
//! Knobs: cards placed and removed, the version register, a corrupt CRC on SELECT answers, and
//! a chip that stops answering (0x00 or 0xFF for every read, or SPI errors) until it has seen a
//! number of hard resets through its reset pin.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use embedded_hal::delay::DelayNs;
use embedded_hal::digital::{self, OutputPin};
use embedded_hal::spi::{self, Operation, SpiDevice};

// Registers with behaviour (the rest just keep what was written).
const COMMAND: u8 = 0x01; // CommandReg: the command running (low nibble); reads 0x20 after reset
const COM_IRQ: u8 = 0x04; // ComIrqReg: TimerIRq 0x01, ErrIRq 0x02, IdleIRq 0x10, RxIRq 0x20
const DIV_IRQ: u8 = 0x05; // DivIrqReg: CRCIRq 0x04
const ERROR: u8 = 0x06; // ErrorReg: CollErr 0x08 (RxCRCEn is off: the driver checks CRCs itself)
const FIFO_DATA: u8 = 0x09; // FIFODataReg: writes push, reads pop
const FIFO_LEVEL: u8 = 0x0A; // FIFOLevelReg: bytes in the FIFO; writing FlushBuffer (0x80) empties it
const CONTROL: u8 = 0x0C; // ControlReg: RxLastBits, the valid bits of the last byte received
const BIT_FRAMING: u8 = 0x0D; // BitFramingReg: StartSend 0x80, RxAlign 0x70, TxLastBits 0x07
const COLL: u8 = 0x0E; // CollReg: CollPos 0x1F (1-based, 32 reads 0), CollPosNotValid 0x20
const TX_CONTROL: u8 = 0x14; // TxControlReg: Tx1RFEn|Tx2RFEn (0x03) switch the RF field on
const CRC_HIGH: u8 = 0x21; // CRCResultReg, high byte
const CRC_LOW: u8 = 0x22; // CRCResultReg, low byte
const VERSION: u8 = 0x37; // VersionReg

const CALC_CRC: u8 = 0x03;
const TRANSCEIVE: u8 = 0x0C;
const SOFT_RESET: u8 = 0x0F;

const REQA: u8 = 0x26;
const WUPA: u8 = 0x52;
const HLTA: u8 = 0x50;
const SELECT: [u8; 3] = [0x93, 0x95, 0x97];
const CASCADE_TAG: u8 = 0x88;

/// How a chip that has stopped answering behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Reads return this byte (0x00 or 0xFF are the usual), writes are lost.
    Answers(u8),
    /// Every SPI transaction fails.
    BusError,
}

/// What the cards have heard, to check which commands the driver sent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Heard {
    pub reqa: usize,
    pub wupa: usize,
    pub select: usize,
    pub hlta: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CardState {
    Idle,
    Halt,
    /// Answering anticollision at this cascade level.
    Ready(usize),
    Active,
}

struct Card {
    uid: Vec<u8>,
    state: CardState,
}

impl Card {
    fn levels(&self) -> usize {
        self.uid.len() / 3 // 4, 7, 10 bytes: 1, 2, 3 cascade levels
    }

    /// UID CLn and its BCC: the cascade tag and three UID bytes before the last level.
    fn cascade(&self, level: usize) -> [u8; 5] {
        let mut cl = [0; 5];
        if level + 1 == self.levels() {
            cl[..4].copy_from_slice(&self.uid[3 * level..3 * level + 4]);
        } else {
            cl[0] = CASCADE_TAG;
            cl[1..4].copy_from_slice(&self.uid[3 * level..3 * level + 3]);
        }
        cl[4] = cl[..4].iter().fold(0, |bcc, b| bcc ^ b);
        cl
    }

    /// The card's answer to `frame` as bits (least significant first), or silence.
    fn hear(&mut self, frame: &[u8], last_bits: u8, bad_crc: bool) -> Option<Vec<bool>> {
        let short = last_bits == 7 && frame.len() == 1;
        match self.state {
            CardState::Idle | CardState::Halt if short && frame[0] == WUPA => {}
            CardState::Idle if short && frame[0] == REQA => {}
            CardState::Ready(level) if frame.len() >= 2 && frame[0] == SELECT[level] => {
                let cl = self.cascade(level);
                if frame[1] != 0x70 {
                    // Anticollision: answer the rest of CLn + BCC if the bits sent so far are ours.
                    let known = usize::from(frame[1] >> 4).saturating_sub(2) * 8 + usize::from(frame[1] & 0x0F);
                    let ours = (0..known).all(|i| bit(&frame[2..], i) == bit(&cl, i));
                    return ours.then(|| (known..40).map(|i| bit(&cl, i)).collect());
                }
                if frame.len() != 9 || crc_a(&frame[..7]) != frame[7..] || frame[2..7] != cl {
                    self.state = CardState::Idle;
                    return None;
                }
                let last = level + 1 == self.levels();
                self.state = if last { CardState::Active } else { CardState::Ready(level + 1) };
                let sak = if last { 0x08 } else { 0x04 }; // 0x04: UID not complete
                let mut answer = vec![sak];
                answer.extend(crc_a(&[sak]));
                if bad_crc {
                    answer[1] ^= 0xFF;
                }
                return Some(bits(&answer));
            }
            CardState::Active if frame.len() == 4 && frame[..2] == [HLTA, 0] && crc_a(&frame[..2]) == frame[2..] => {
                self.state = CardState::Halt;
                return None;
            }
            // Anything else sends a card back to IDLE (ISO 14443-3 would pick HALT for some).
            CardState::Ready(_) | CardState::Active => {
                self.state = CardState::Idle;
                return None;
            }
            _ => return None,
        }
        self.state = CardState::Ready(0);
        let size = (self.levels() as u8 - 1) << 6; // ATQA bits 7-6: single, double, triple UID
        Some(bits(&[size | 0x04, 0x00])) // bit 2: bit-frame anticollision
    }
}

fn bit(bytes: &[u8], i: usize) -> bool {
    bytes[i / 8] >> (i % 8) & 1 == 1
}

fn bits(bytes: &[u8]) -> Vec<bool> {
    (0..bytes.len() * 8).map(|i| bit(bytes, i)).collect()
}

/// CRC_A of ISO 14443-3 (preset 0x6363, as the driver sets in ModeReg), low byte first.
pub fn crc_a(data: &[u8]) -> [u8; 2] {
    let crc = data.iter().fold(0x6363u16, |crc, &byte| {
        let mut b = byte ^ crc as u8;
        b ^= b << 4;
        let b = u16::from(b);
        (crc >> 8) ^ (b << 8) ^ (b << 3) ^ (b >> 4)
    });
    crc.to_le_bytes()
}

struct Chip {
    regs: [u8; 64],
    fifo: VecDeque<u8>,
    version: u8,
    cards: Vec<Card>,
    bad_select_crc: bool,
    /// The fault and how many hard resets it still takes to clear it.
    fault: Option<(Fault, usize)>,
    reset_low: bool,
    hard_resets: usize,
    heard: Heard,
}

impl Chip {
    fn power_on(&mut self) {
        self.regs = [0; 64];
        self.regs[usize::from(COMMAND)] = 0x20;
        self.regs[usize::from(TX_CONTROL)] = 0x80; // antenna off
        self.fifo.clear();
        self.field_off();
    }

    fn field_off(&mut self) {
        for card in &mut self.cards {
            card.state = CardState::Idle; // unpowered, cards forget HALT
        }
    }

    fn read(&mut self, reg: u8) -> u8 {
        match (self.fault, reg) {
            (Some((Fault::Answers(byte), _)), _) => byte,
            (_, FIFO_DATA) => self.fifo.pop_front().unwrap_or(0),
            (_, FIFO_LEVEL) => self.fifo.len() as u8,
            (_, VERSION) => self.version,
            _ => self.regs[usize::from(reg)],
        }
    }

    fn write(&mut self, reg: u8, value: u8) {
        if self.fault.is_some() {
            return;
        }
        let old = self.regs[usize::from(reg)];
        match reg {
            FIFO_DATA => self.fifo.push_back(value),
            FIFO_LEVEL if value & 0x80 != 0 => self.fifo.clear(),
            // Bit 7 (Set1) says whether the marked bits are set or cleared.
            COM_IRQ | DIV_IRQ if value & 0x80 != 0 => self.regs[usize::from(reg)] |= value & 0x7F,
            COM_IRQ | DIV_IRQ => self.regs[usize::from(reg)] &= !value,
            COMMAND => match value & 0x0F {
                SOFT_RESET => self.power_on(),
                CALC_CRC => {
                    let crc = crc_a(self.fifo.make_contiguous());
                    (self.regs[usize::from(CRC_LOW)], self.regs[usize::from(CRC_HIGH)]) = (crc[0], crc[1]);
                    self.regs[usize::from(DIV_IRQ)] |= 0x04;
                    self.regs[usize::from(COMMAND)] = value;
                }
                _ => self.regs[usize::from(COMMAND)] = value,
            },
            BIT_FRAMING => {
                self.regs[usize::from(reg)] = value & 0x7F;
                if value & 0x80 != 0 && self.regs[usize::from(COMMAND)] & 0x0F == TRANSCEIVE {
                    self.transceive();
                }
            }
            TX_CONTROL => {
                self.regs[usize::from(reg)] = value;
                if old & 0x03 != 0 && value & 0x03 == 0 {
                    self.field_off();
                }
            }
            _ => self.regs[usize::from(reg)] = value,
        }
    }

    /// Sends the FIFO to the cards and puts what comes back in it, as the chip would.
    fn transceive(&mut self) {
        let frame: Vec<u8> = self.fifo.drain(..).collect();
        let framing = self.regs[usize::from(BIT_FRAMING)];
        let (last_bits, rx_align) = (framing & 0x07, usize::from(framing >> 4 & 0x07));
        match (last_bits, frame.as_slice()) {
            (7, [REQA]) => self.heard.reqa += 1,
            (7, [WUPA]) => self.heard.wupa += 1,
            (_, [sel, 0x70, ..]) if SELECT.contains(sel) => self.heard.select += 1,
            (_, [HLTA, 0, _, _]) => self.heard.hlta += 1,
            _ => {}
        }
        let bad_crc = self.bad_select_crc;
        let field = self.regs[usize::from(TX_CONTROL)] & 0x03 != 0;
        let replies: Vec<Vec<bool>> = match field {
            true => self.cards.iter_mut().filter_map(|c| c.hear(&frame, last_bits, bad_crc)).collect(),
            false => Vec::new(),
        };
        self.regs[usize::from(ERROR)] = 0;
        self.regs[usize::from(COLL)] = 0x20;
        let Some(first) = replies.first() else {
            self.regs[usize::from(COM_IRQ)] |= 0x01; // nobody answered: the timer runs out
            return;
        };
        let length = replies.iter().map(Vec::len).max().unwrap_or(0);
        let mut received = vec![false; length];
        let collision = (0..length).find(|&i| replies.iter().any(|r| r.get(i) != first.get(i)));
        let clean = collision.unwrap_or(length);
        received[..clean].copy_from_slice(&first[..clean]); // bits after a collision read 0
        let mut irq = 0x30; // RxIRq | IdleIRq
        if let Some(at) = collision {
            // CollPos counts from the first bit of the UID CLn: the bits sent plus those received,
            // which is how the mfrc522 crate (like the Arduino library) reads it.
            let sent = if frame.len() >= 2 && SELECT.contains(&frame[0]) {
                usize::from(frame[1] >> 4).saturating_sub(2) * 8 + usize::from(frame[1] & 0x0F)
            } else {
                0
            };
            let position = sent + at + 1;
            self.regs[usize::from(COLL)] = if position <= 32 { (position % 32) as u8 } else { 0x20 };
            self.regs[usize::from(ERROR)] = 0x08;
            irq |= 0x02;
        }
        // The first bit received lands at bit RxAlign of the first FIFO byte.
        let total = rx_align + length;
        let mut bytes = vec![0u8; total.div_ceil(8)];
        for (i, _) in received.iter().enumerate().filter(|(_, on)| **on) {
            bytes[(rx_align + i) / 8] |= 1 << ((rx_align + i) % 8);
        }
        self.fifo.extend(bytes);
        self.regs[usize::from(CONTROL)] = (total % 8) as u8;
        self.regs[usize::from(COM_IRQ)] |= irq;
    }
}

/// The chip as an `SpiDevice`; clones share it, so a test keeps one to turn the knobs while the
/// reader owns another.
#[derive(Clone)]
pub struct Mfrc522Model(Arc<Mutex<Chip>>);

#[derive(Debug)]
pub struct BusFault;

impl spi::Error for BusFault {
    fn kind(&self) -> spi::ErrorKind {
        spi::ErrorKind::Other
    }
}

impl spi::ErrorType for Mfrc522Model {
    type Error = BusFault;
}

/// Where an SPI transaction is: the first byte is an address, `(reg << 1) | 0x80` to read.
/// Reading, each further byte out is the next address and each byte in the previous one's value;
/// writing, every further byte goes to the same register.
enum Link {
    Address,
    Reading(u8),
    Writing(u8),
}

impl Mfrc522Model {
    /// An NXP MFRC522 version 2.0 (0x92) with an empty field.
    pub fn new() -> Self {
        let mut chip = Chip {
            regs: [0; 64],
            fifo: VecDeque::new(),
            version: 0x92,
            cards: Vec::new(),
            bad_select_crc: false,
            fault: None,
            reset_low: false,
            hard_resets: 0,
            heard: Heard::default(),
        };
        chip.power_on();
        Self(Arc::new(Mutex::new(chip)))
    }

    fn chip(&self) -> MutexGuard<'_, Chip> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Puts a card with this UID (4, 7 or 10 bytes) in the field.
    pub fn place(&self, uid: &[u8]) {
        assert!(matches!(uid.len(), 4 | 7 | 10), "cards have 4, 7 or 10 byte UIDs");
        self.chip().cards.push(Card { uid: uid.to_vec(), state: CardState::Idle });
    }

    /// Takes every card away.
    pub fn clear(&self) {
        self.chip().cards.clear();
    }

    pub fn set_version(&self, version: u8) {
        self.chip().version = version;
    }

    /// Cards answer SELECT with a wrong CRC while this is on.
    pub fn corrupt_select_crc(&self, on: bool) {
        self.chip().bad_select_crc = on;
    }

    /// The chip stops answering until it has seen `resets` hard resets.
    pub fn fail(&self, fault: Fault, resets: usize) {
        self.chip().fault = Some((fault, resets));
    }

    pub fn hard_resets(&self) -> usize {
        self.chip().hard_resets
    }

    pub fn heard(&self) -> Heard {
        self.chip().heard
    }

    /// The reset line (NRSTPD): low powers the chip down, back high restarts it.
    pub fn reset_pin(&self) -> ResetPin {
        ResetPin(self.clone())
    }
}

impl SpiDevice for Mfrc522Model {
    fn transaction(&mut self, operations: &mut [Operation<'_, u8>]) -> Result<(), BusFault> {
        let mut chip = self.chip();
        if chip.reset_low || matches!(chip.fault, Some((Fault::BusError, _))) {
            return Err(BusFault);
        }
        let mut link = Link::Address;
        let mut clock = |mosi: u8| match link {
            Link::Address => {
                let reg = mosi >> 1 & 0x3F;
                link = if mosi & 0x80 != 0 { Link::Reading(reg) } else { Link::Writing(reg) };
                0
            }
            Link::Reading(reg) => {
                link = Link::Reading(mosi >> 1 & 0x3F);
                chip.read(reg)
            }
            Link::Writing(reg) => {
                chip.write(reg, mosi);
                0
            }
        };
        for op in operations {
            match op {
                Operation::Write(words) => {
                    for &w in words.iter() {
                        clock(w);
                    }
                }
                Operation::Read(words) => words.iter_mut().for_each(|w| *w = clock(0)),
                Operation::TransferInPlace(words) => words.iter_mut().for_each(|w| *w = clock(*w)),
                Operation::Transfer(read, write) => {
                    for i in 0..read.len().max(write.len()) {
                        let miso = clock(write.get(i).copied().unwrap_or(0));
                        if let Some(r) = read.get_mut(i) {
                            *r = miso;
                        }
                    }
                }
                Operation::DelayNs(_) => {}
            }
        }
        Ok(())
    }
}

/// The test's wire to the chip's reset pin.
pub struct ResetPin(Mfrc522Model);

impl digital::ErrorType for ResetPin {
    type Error = Infallible;
}

impl OutputPin for ResetPin {
    fn set_low(&mut self) -> Result<(), Infallible> {
        self.0.chip().reset_low = true;
        Ok(())
    }

    fn set_high(&mut self) -> Result<(), Infallible> {
        let mut chip = self.0.chip();
        if std::mem::replace(&mut chip.reset_low, false) {
            chip.hard_resets += 1;
            chip.fault = match chip.fault {
                Some((fault, resets)) if resets > 1 => Some((fault, resets - 1)),
                _ => None,
            };
            chip.power_on();
        }
        Ok(())
    }
}

/// A delay that sleeps at most a couple of milliseconds, so that resets and retry pauses pass
/// quickly, and remembers what it was asked for.
#[derive(Clone, Default)]
pub struct FastDelay(Arc<Mutex<Vec<Duration>>>);

impl FastDelay {
    pub const LONGEST: Duration = Duration::from_millis(2);

    /// Every wait asked for, in order.
    pub fn asked(&self) -> Vec<Duration> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

impl DelayNs for FastDelay {
    fn delay_ns(&mut self, ns: u32) {
        let asked = Duration::from_nanos(ns.into());
        self.0.lock().unwrap_or_else(|p| p.into_inner()).push(asked);
        std::thread::sleep(asked.min(Self::LONGEST));
    }
}
